"""How a prompt names each reference, by the model's label rule."""

from __future__ import annotations

from typing import Sequence

from .spec import Kind, LabelRule


def assign_labels(rule: LabelRule, kinds: Sequence[Kind]) -> list[str]:
    """The label of each reference, given the kinds in request order.

    Images and videos are numbered separately unless the rule shares one
    counter; a lone reference may have a label of its own ("reference image").
    """
    if len(kinds) == 1 and kinds[0] in rule.sole:
        return [rule.sole[kinds[0]]]
    counts = {"image": 0, "video": 0}
    labels = []
    for kind in kinds:
        counter = "image" if rule.shared_count else kind
        counts[counter] += 1
        template = rule.image if kind == "image" else rule.video
        labels.append(template.format(n=counts[counter]))
    return labels
