import sys

from kuairec.cli import main

sys.exit(main())
