"""Runnable examples: python -m corenn.examples.workflow"""
