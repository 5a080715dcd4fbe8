"""`python -m course_utils.grading`: the same command as `course-grade`."""

import sys

from . import main

sys.exit(main())
