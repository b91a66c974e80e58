"""nbgrader's Execute step, made robust to submissions that hang or kill their kernel.

Plain ``nbgrader autograde`` aborts a whole notebook when the kernel dies (``os._exit``, a
segfault, the out-of-memory killer) and, when an interrupt cannot stop a runaway cell, lets every
later cell wait for its full timeout. :class:`GradingExecute` (used through ``nbgrader_config.py``)
instead:

* on a cell timeout interrupts the kernel and waits ``interrupt_grace`` seconds for it to answer;
  a kernel that does not answer is shut down;
* when the kernel is dead (or was shut down) records an error output in the current cell
  (``KernelDied: ...``) and in every later code cell (``NotRun: ...``), so the notebook is still
  graded: cells before the crash keep their points, the affected cells get zero;
* stops running cells once ``notebook_timeout`` seconds have passed (``NotRun`` for the rest).

The error names :data:`FLAG_NAMES` are what ``python -m cvcourse.grading grade`` looks for to
list the students whose notebook needs a look.
"""

from __future__ import annotations

from time import monotonic

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer

#: Error names written into cells that could not be graded normally.
FLAG_NAMES = ("KernelDied", "NotRun", "CellTimeoutError")


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class GradingExecute(Execute):
    """nbgrader's ``Execute`` that grades what it can when a kernel hangs or dies."""

    interrupt_grace = Float(10.0, help="Seconds to wait for a timed-out cell to stop after an interrupt.").tag(
        config=True)
    notebook_timeout = Integer(1800, help="Seconds for the whole notebook; later cells are not run.").tag(
        config=True)

    _dead_reason: str | None = None
    _started: float | None = None
    _msg_id: str | None = None

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        runs = cell.cell_type == "code" and cell.source.strip()
        if self._started is None:
            self._started = monotonic()
        if runs and self._dead_reason is None and monotonic() - self._started > self.notebook_timeout:
            self._dead_reason = f"the notebook ran longer than its {self.notebook_timeout} s budget"
            await self._kill()
        if runs and self._dead_reason is not None:
            cell.outputs = [_error("NotRun", f"this cell was not run because {self._dead_reason}")]
            return cell
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except (DeadKernelError, CellTimeoutError) as err:
            if self._dead_reason is None:
                self._dead_reason = "the kernel died in an earlier cell (os._exit, a crash or out of memory)"
                what = "the kernel died while running this cell (os._exit, a crash or out of memory)"
            else:
                what = self._dead_reason.replace("in an earlier cell", "in this cell")
            self.log.error("Cell %s: %s (%s)", cell_index, what, type(err).__name__)
            cell.outputs.append(_error("KernelDied", what))
            return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds the sync wrapper to its own coroutine

    async def _async_poll_for_reply(self, msg_id, *args, **kwargs):
        self._msg_id = msg_id  # the request a timeout interrupts
        return await super()._async_poll_for_reply(msg_id, *args, **kwargs)

    async def _kill(self) -> None:
        try:
            await self.km.shutdown_kernel(now=True)
        except Exception as err:  # noqa: BLE001  (a dead kernel may fail to shut down; nothing to do)
            self.log.warning("Could not shut the kernel down: %s", err)

    async def _async_handle_timeout(self, timeout, cell=None):
        self.log.error("Timeout waiting for execute reply (%is); interrupting the kernel.", timeout)
        await self.km.interrupt_kernel()
        deadline = monotonic() + self.interrupt_grace
        while monotonic() < deadline:  # the interrupted cell's own reply proves the kernel is alive
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=max(0.1, deadline - monotonic()))
            except Exception:  # noqa: BLE001  (queue.Empty: nothing yet)
                continue
            if msg.get("parent_header", {}).get("msg_id") == self._msg_id:
                return {"content": {**self.error_on_timeout, "status": "error",
                                    "evalue": f"the cell ran longer than {timeout} s and was interrupted"}}
        self._dead_reason = f"a cell ran longer than {timeout} s and the kernel did not respond to an interrupt"
        await self._kill()
        raise DeadKernelError(self._dead_reason)

    def preprocess(self, nb, resources=None, km=None):
        self._dead_reason = None
        self._started = None
        return super().preprocess(nb, resources, km)

