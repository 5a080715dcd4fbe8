"""`python -m course_utils.assessment.grading`: the same command as `course-grade`."""

import sys

from . import main

sys.exit(main())
