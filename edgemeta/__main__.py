import sys

from edgemeta.cli import main

sys.exit(main())
