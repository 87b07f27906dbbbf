"""Every test posting's matches under a plan fitted to the test's gallery (lib.inference.gallery): by its second stage
(features of every component, a classifier, graph steps) where it has one, else by its rules, from the components they
use."""

from lib.inference import pipeline
from lib.inference.gallery import ForTest
from lib.inference.stopwatch import Stopwatch
from lib.matching import pairs
from lib.second_stage import graph, pair_stage


def match_test(
    fitted: ForTest, test, test_titles: list[str], image_dir, corpus: list[str], settings: dict, stopwatch: Stopwatch
) -> list[list[str]]:
    """Each test posting's matches (posting ids); `test_titles` normalised, images in `image_dir`, `corpus` and
    `settings` as for lib.inference.pipeline.signals."""
    if test.empty:
        return []
    plan = fitted.plan
    names = plan["components"] if fitted.stage else fitted.rules["components"]
    used = {**plan, "components": {name: plan["components"][name] for name in names}}
    found = pipeline.signals(used, test, test_titles, image_dir, corpus, settings, stopwatch)
    c = found.candidates
    if fitted.stage:
        phashes, image_text = list(test.image_phash), pipeline.image_text_pairs(plan["models"], found.outputs)
        with stopwatch.stage("pair stage: features", len(test)):  # built and scored a chunk at a time
            both, scores, scorer = pair_stage.score(
                found.vectors, found.neighbours, c, test_titles, phashes, fitted.stage, fitted.folder, image_text
            )
        print(f"pair stage: {len(scores)} test pairs scored by {scorer}")
        with stopwatch.stage("pair stage: graph steps", len(test)):
            matches = graph.apply(both, scores, fitted.stage["graph"])
    else:
        with stopwatch.stage("matching rules", len(test)):
            matches = pairs.to_lists(c, pairs.predict(c, fitted.rules, found.conflicts))
    return pairs.to_posting_ids(matches, test.posting_id)
