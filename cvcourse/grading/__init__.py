"""Grading tools for the course's nbgrader assignments (see README.md, "For instructors").

* :mod:`cvcourse.grading.sandbox` — the bubblewrap kernel that ``nbgrader autograde`` uses;
* :mod:`cvcourse.grading.execute` — nbgrader's execute step, robust to hung or crashed kernels;
* :mod:`cvcourse.grading.feedback` — feedback without hidden test code;
* :mod:`cvcourse.grading.checks` — trusted comparisons, tamper and library-call checks for hidden tests;
* :mod:`cvcourse.grading.generate` — regenerate ``assignments/release`` and ``solutions``;
* :mod:`cvcourse.grading.submissions` — sample submissions as ``.py`` files;
* :mod:`cvcourse.grading.static_report` — the constructs in a submission a grader should read by hand;
* :mod:`cvcourse.grading.autograde` — grade a batch in parallel and read the scores back.

Command line: ``python -m cvcourse.grading {install-kernel,generate,grade}``. Nothing is imported
here eagerly, so ``import cvcourse.grading.checks`` inside the sandbox stays light.
"""
