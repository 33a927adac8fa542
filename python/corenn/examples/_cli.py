"""The command line the examples share: `python -m corenn.examples.NAME [--fast]`."""

import argparse


def fast_flag(doc, help):
    """Parses the command line of an example whose module docstring is doc:
    True when --fast (the tests' short run) was given."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help=help)
    return parser.parse_args().fast
