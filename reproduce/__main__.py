"""``python -m reproduce PAPER [--quick|--full] [--out DIR]``: the same as ``nasrepro reproduce``."""
import sys

from nasrepro.cli import main

sys.exit(main(["reproduce", *sys.argv[1:]]))
