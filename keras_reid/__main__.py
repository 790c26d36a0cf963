import sys

from keras_reid.cli import main

sys.exit(main())
