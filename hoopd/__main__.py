import sys

from hoopd.cli import main

sys.exit(main())
