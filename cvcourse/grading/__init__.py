"""Grading tools for the course's nbgrader assignments (see README.md, "For instructors").

* :mod:`cvcourse.grading.sandbox` — the bubblewrap kernel that ``nbgrader autograde`` uses;
* :mod:`cvcourse.grading.execute` — nbgrader's execute step (scratch folder, hidden tests purged and
  redacted, robust to hung or crashed kernels) and scores taken only from errors;
* :mod:`cvcourse.grading.course` — find the course checkout, call nbgrader, build a course folder;
* :mod:`cvcourse.grading.feedback` — feedback without hidden test code;
* :mod:`cvcourse.grading.checks` — trusted comparisons, tamper and library-call checks for hidden tests;
* :mod:`cvcourse.grading.generate` — regenerate ``assignments/release`` and ``solutions``;
* :mod:`cvcourse.grading.submissions` — sample submissions as ``.py`` files;
* :mod:`cvcourse.grading.static_report` — the constructs in a submission a grader should read by hand;
* :mod:`cvcourse.grading.autograde` — find submissions, grade a batch in parallel, read the scores back;
* :mod:`cvcourse.grading.table` — the grade table and CSV;
* :mod:`cvcourse.grading.collect` — ``nbgrader zip_collect`` for Canvas/Moodle/plain downloads;
* :mod:`cvcourse.grading.similarity` — pairwise similarity of answer cells (AST-normalised);
* :mod:`cvcourse.grading.lms` — grade files that Canvas and Moodle import.

Command line: ``python -m cvcourse.grading {install-kernel,generate,grade,similarity,lms}``. Nothing is imported
here eagerly, so ``import cvcourse.grading.checks`` inside the sandbox stays light.
"""
