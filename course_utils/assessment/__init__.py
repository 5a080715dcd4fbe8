"""Assessment: graded items and their verdicts, learner feedback, exercise generation, the grader.

    items        an item's definition (cases, reference, tolerances) and how a value is judged
    verdict      the one verdict on an item and its wording, shared by `check()` and the grader
    checks       `check("name")`: the learner's ✅/❌ on the public cases
    authoring    exercises generated from solutions; stored outputs regenerated
    release      the student course tree: no solutions, no instructor key (`make release`)
    assignments  each chapter's public items; `assignments/key/` is the instructor key (hidden cases,
                 answers, listed mistakes), left out of a release and never readable by a graded notebook
    grading      `course-grade`: runs submissions in a sandbox (parent, forkserver, child) and scores them
"""
