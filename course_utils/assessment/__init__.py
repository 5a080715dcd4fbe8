"""Assessment: graded items and their verdicts, learner feedback, exercise generation, the grader.

    items        an item's definition (cases, reference, tolerances) and how a value is judged
    verdict      the one verdict on an item and its wording, shared by `check()` and the grader
    checks       `check("name")`: the learner's ✅/❌ on the public cases
    authoring    exercises generated from solutions; stored outputs regenerated
    assignments  one module per chapter defining its graded items
    grading      `course-grade`: runs submissions in a sandbox (parent, forkserver, child) and scores them
"""
