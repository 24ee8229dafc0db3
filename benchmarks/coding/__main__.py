import signal
import sys

from benchmarks.coding.cli import interrupt, main

signal.signal(signal.SIGTERM, interrupt)  # stop like Ctrl-C: keep the results file, stop a graph started here
sys.exit(main())
