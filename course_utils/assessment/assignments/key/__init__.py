"""The instructor key: per chapter, the hidden cases, the answers of answer items and the mistakes to reject.

Only the grader and the instructor's tests read it; `make release` leaves this package out of the
student tree, and the grading sandbox hides it from the code it runs.
"""
