import sys

from sqlmr.cli import main

sys.exit(main())
