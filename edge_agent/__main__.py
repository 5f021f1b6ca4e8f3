import sys

from edge_agent.launcher import main

sys.exit(main())
