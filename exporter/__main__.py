"""``python -m exporter`` is the ``smtpeter-exporter`` command."""

import sys

from exporter.cli import main

sys.exit(main())
