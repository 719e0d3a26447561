import sys

from dongled.cli import main

sys.exit(main())
