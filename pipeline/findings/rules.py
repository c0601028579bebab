"""The flag rule of a cluster and its one-sentence reason.

A cluster is flagged when covering its small hot region changes most of its members'
predictions and covering a control region does not:

    flip_rate >= min_flip_rate, flip_rate >= min_flip_ratio * control_flip_rate,
    region share <= max_region_share, count >= max(min_members, min_member_share * class count)

(with a zero control, any flip_rate meeting ``min_flip_rate`` meets the ratio). Every
threshold is a ``findings`` config field (``pipeline.config.FindingsConfig``).
"""

from pipeline.config import FindingsConfig
from pipeline.findings.regions import place_words, region_share


def is_flagged(settings, count, class_count, region, flip_rate, control_flip_rate,
               occluded_examples):
    """Whether a cluster meets the rule; ``settings`` is the FindingsConfig."""
    if not occluded_examples:
        return False
    enough = count >= max(settings.min_members, settings.min_member_share * class_count)
    return bool(enough and region_share(region) <= settings.max_region_share
                and flip_rate >= settings.min_flip_rate
                and flip_rate >= settings.min_flip_ratio * control_flip_rate)


def reason(class_label, count, class_count, region, flip_rate, control_flip_rate,
           occluded_examples, flagged=True, settings=None):
    """One plain sentence describing a cluster and its occlusion test; a cluster "relies on"
    its region only when flagged, otherwise it "looks at" it. A region is "small" up to the
    rule's ``max_region_share`` (``settings``: the FindingsConfig; None: its defaults)."""
    settings = settings or FindingsConfig()
    share = count / class_count if class_count else 0.0
    small = region_share(region) <= settings.max_region_share
    size = "a small region" if small else "a large region"
    verb = "rely on" if flagged else "look at"
    text = (f"{class_label}: {count:,} of {class_count:,} examples ({share:.0%}) {verb} {size} "
            f"at {place_words(region)}")
    if not occluded_examples:
        return text + "; no example of it could be occluded"
    return (text + f"; covering it changes {flip_rate:.0%} of their predictions, a control "
            f"region {control_flip_rate:.0%} ({occluded_examples} examples tested)")
