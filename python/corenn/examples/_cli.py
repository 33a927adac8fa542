"""The command line the examples share: `python -m corenn.examples.NAME [--fast]
[--threads N]` plus each example's own options."""

import argparse


def parser(doc, fast_help):
    """An ArgumentParser with the options every example takes: --fast (the
    tests' short run) and --threads (corenn.set_num_threads); an example adds
    its own options to it and reads them with parse()."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help=fast_help)
    p.add_argument("--threads", type=int, help="corenn.set_num_threads (default: all cores)")
    return p


def parse(p, argv=None):
    """p's arguments from argv (the command line when None), --threads applied."""
    args = p.parse_args(argv)
    if args.threads is not None:
        import corenn
        corenn.set_num_threads(args.threads)
    return args


def fast_flag(doc, help):
    """Parses the command line of an example that has no options of its own
    (module docstring doc): True when --fast was given."""
    return parse(parser(doc, help)).fast
