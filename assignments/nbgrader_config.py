"""nbgrader configuration of the cvcourse assignments (read by every nbgrader command run here).

Autograding runs student code in the bubblewrap sandbox kernel (cvcourse.grading.sandbox); see
README.md, "For instructors". Every setting below fixes an nbgrader default that is wrong for this course.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, GetGrades,
                                   IgnorePattern, LimitOutput, OverwriteKernelspec)

from cvcourse.grading.execute import GradingExecute, SaveScoresFromErrors
from cvcourse.grading.collect import LMSCollector, LMSExtractor
from cvcourse.grading.feedback import HideHiddenTests
from cvcourse.grading.restore import RestoreLockedCells
from cvcourse.grading.sandbox import configure

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "cvcourse"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.assignment_id = ""

# --- Execution: sandboxed kernel, generous but bounded time -------------------------------------
# Student code runs in bubblewrap (no network, no course folder, no gradebook, own PID namespace, uid 65534),
# in a scratch copy of its folder without the notebook; a fresh connection folder per kernel.
# The kernelspec is (re)installed into this environment automatically; the kernel refuses to start
# (and the notebook is reported as failed) when bwrap is missing, never running unsandboxed.
configure(c)  # kernel cvcourse-sandbox, ipc transport, private runtime folder (see cvcourse.grading.sandbox)
c.Execute.timeout = 240            # per cell: the U-Net learning test trains up to two seeds (about 30 CPU-s each)
c.Execute.startup_timeout = 120    # importing torch in a fresh kernel on a busy 2-core machine
c.Execute.interrupt_on_timeout = True
c.GradingExecute.interrupt_grace = 10
c.GradingExecute.notebook_timeout = 1200
c.Execute.iopub_timeout = 10
# GradingExecute: scratch folder, hidden tests purged from the kernel and redacted from every output,
# and the cells it can graded when a submission hangs or kills its kernel. SaveScoresFromErrors: a test
# cell's score is whether it raised, nothing it printed (nbgrader's SaveAutoGrades reads a partial score
# from an execute_result and fails a cell on any stderr, so a warning or a tqdm bar cost points).
c.Autograde.autograde_preprocessors = [
    GradingExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveScoresFromErrors,
    AssignLatePenalties, CheckCellMetadata,
]

# --- Harmless stderr (torch/ipykernel warnings) is dropped from the graded notebook and the feedback --
# (scores no longer depend on stderr; this only keeps the feedback readable)
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(Warning|warn\(|^\s*$|\[W\d+ |UserWarning|FutureWarning|DeprecationWarning)"

# --- Locked cells: a deleted or edited test cell is restored from the source and run -------------
c.OverwriteCells.add_missing_cells = True
# RestoreLockedCells: OverwriteCells that compares a cell with its released version (hidden tests removed), so an
# untouched release copy logs no "Attribute 'checksum' ... has changed!" and a real edit of a locked cell stands out
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreLockedCells,
                                      CheckCellMetadata]
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40

# --- Feedback must not show hidden tests (nbgrader #917) -----------------------------------------
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]

# --- Students' own copies: release/ keeps the cells' ids and checksums for `nbgrader validate` ---
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# --- Collecting LMS downloads: Canvas, Moodle and plain <student>.ipynb names; an empty collection is an error
c.ZipCollectApp.collector_plugin = LMSCollector
c.ZipCollectApp.extractor_plugin = LMSExtractor
