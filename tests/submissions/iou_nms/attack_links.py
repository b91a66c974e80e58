# Attacks the host and another student through links in its own folder (correct code otherwise, full
# marks): nbgrader writes the graded notebook into the submission folder and chmods every file there, as
# the instructor, outside the sandbox. The code replaces its notebook by a symbolic link to another
# student's submitted notebook (correct_vectorised), links to a host file and to /etc, and leaves a
# hard link and a fifo. The grader must not write or chmod through any of them, copy none back,
# and list each under "needs a look".

# -- cell: box_area --
import os, pathlib

_here = pathlib.Path.cwd()
_course = _here.parents[2] if len(_here.parents) > 2 else _here  # autograded/<me>/iou_nms -> the course
_victim = _course / "submitted" / "correct_vectorised" / "iou_nms" / "iou_nms.ipynb"
for _name, _target in [("iou_nms.ipynb", _victim), ("host_link", "/tmp/cvcourse-attack-host-file"),
                       ("etc_link", "/etc")]:
    if os.path.lexists(_name):
        os.remove(_name)
    os.symlink(str(_target), _name)
pathlib.Path("hard_a").write_text("cvcourse-attack hard link")
if not os.path.exists("hard_b"):
    os.link("hard_a", "hard_b")
if not os.path.exists("pipe"):
    os.mkfifo("pipe")
pathlib.Path("notes.txt").write_text("an ordinary file the student wrote")


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

# -- cell: box_iou --
def box_iou(boxes1, boxes2):
    b1, b2 = boxes1.float(), boxes2.float()
    x1 = torch.maximum(b1[:, None, 0], b2[None, :, 0])
    y1 = torch.maximum(b1[:, None, 1], b2[None, :, 1])
    x2 = torch.minimum(b1[:, None, 2], b2[None, :, 2])
    y2 = torch.minimum(b1[:, None, 3], b2[None, :, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))

# -- cell: nms --
def nms(boxes, scores, iou_threshold):
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
    keep = []
    for c in idxs.unique().tolist():
        members = (idxs == c).nonzero().flatten()
        keep.append(members[nms(boxes[members], scores[members], iou_threshold)])
    if not keep:
        return torch.zeros(0, dtype=torch.int64)
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]
