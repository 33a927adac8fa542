"""python -m corenn --cmake-dir: print the folder of the installed CMake package."""

import argparse

from ._install import get_cmake_dir


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m corenn", description=__doc__)
    parser.add_argument("--cmake-dir", action="store_true",
                        help="print the folder of corennConfig.cmake (for -Dcorenn_DIR=...)")
    args = parser.parse_args(argv)
    if not args.cmake_dir:
        parser.print_help()
        return 2
    print(get_cmake_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
