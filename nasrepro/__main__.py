import sys

from nasrepro.cli import main

sys.exit(main())
