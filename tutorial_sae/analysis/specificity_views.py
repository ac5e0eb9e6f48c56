"""Chapter 5's reports: best script features, prompt-table numbers, mixed neurons, feature 42."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tutorial_sae.analysis.polysemantic import PolysemanticNeuron
from tutorial_sae.analysis.prompts import PromptRow, SharedFeature, mean_by_language, shared_feature
from tutorial_sae.analysis.specificity import (
    ConceptSummary,
    ScriptScan,
    concept_shares,
    summarize,
)
from tutorial_sae.utils import check_str, check_strings


def script_summaries(scan: ScriptScan) -> list[ConceptSummary]:
    """`summarize` for Han and Arabic; when the text has neither script (gelu-1l's held-out text
    may not), for code and Latin instead (Bricken et al. 2023's specificity and sensitivity)."""
    if not isinstance(scan, ScriptScan):
        raise TypeError(f"expected a ScriptScan, got {type(scan).__name__}")
    return summarize(scan, ("han", "arabic")) or summarize(scan, ("code", "latin"))


def _check_summary(summary) -> None:
    if not isinstance(summary, ConceptSummary):
        raise TypeError(f"expected a ConceptSummary, got {type(summary).__name__}")


def best_feature_values(summary: ConceptSummary) -> dict[str, float]:
    """A concept's best feature by glue name: its index (`<concept>_feature`), specificity
    (`_spec`), sensitivity (`_sens`) and precision (`_prec`), as Bricken et al. 2023 define them."""
    _check_summary(summary)
    f, c = summary.feature, summary.concept
    return {
        f"{c}_feature": f.index,
        f"{c}_spec": f.specificity,
        f"{c}_sens": f.sensitivity,
        f"{c}_prec": f.precision,
    }


def describe_best_feature(summary: ConceptSummary) -> str:
    """One line: the concept's best feature with its specificity, precision, sensitivity and
    F1 = 2PS/(P+S)."""
    _check_summary(summary)
    f = summary.feature
    return (
        f"{summary.concept}: feature {f.index}, specificity {f.specificity:.3f}, "
        f"precision {f.precision:.3f}, sensitivity {f.sensitivity:.3f}, F1 {f.f1:.3f}"
    )


def prompt_table_stats(
    rows: Sequence[PromptRow], paper_rows: Sequence[PromptRow], feature: int
) -> dict[str, float]:
    """For the prompt table of section 5.5: the feature's mean activation per language
    (`table_mean_<lang>`), Chinese over the larger of English and Arabic (`table_ratio`) and
    how many of the paper's Chinese sentences it is silent on (`paper_zh_silent`)."""
    for name, value in (("rows", rows), ("paper_rows", paper_rows)):
        if not isinstance(value, Sequence) or not all(isinstance(r, PromptRow) for r in value):
            raise TypeError(f"expected {name} as a list of PromptRow, got {value!r:.80}")
    means = mean_by_language(rows, feature)
    missing = {"zh", "en", "ar"} - set(means)
    if missing:
        raise ValueError(f"expected rows in zh, en and ar, got none in {sorted(missing)}")
    values: dict[str, float] = {f"table_mean_{lang}": value for lang, value in means.items()}
    values["table_ratio"] = means["zh"] / max(means["en"], means["ar"], 1e-6)
    paper_zh = [r for r in paper_rows if r.lang == "zh" and r.feature == feature]
    values["paper_zh_silent"] = sum(r.max_act == 0 for r in paper_zh)
    return values


def describe_polysemantic(poly: PolysemanticNeuron) -> str:
    """One line: where the neuron fires (sensitivity per concept above its threshold) and how
    much of each separating feature's activation leaks onto the other concept."""
    if not isinstance(poly, PolysemanticNeuron):
        raise TypeError(f"expected a PolysemanticNeuron, got {type(poly).__name__}")
    a, b = poly.concepts
    return (
        f"neuron {poly.neuron} fires on {a} ({poly.sensitivity[0]:.0%} of its tokens) and "
        f"{b} ({poly.sensitivity[1]:.0%}) above {poly.threshold:.2f}; features "
        f"{poly.features[0].index} / {poly.features[1].index} put {poly.leak[0]:.1%} / "
        f"{poly.leak[1]:.1%} of their activation on the other concept"
    )


def pick_polysemantic(
    found: Sequence[PolysemanticNeuron], pair: tuple[str, str] = ("han", "arabic")
) -> PolysemanticNeuron | None:
    """The neuron found for `pair` when there is one, else the most polysemantic (the first of
    `polysemantic_neurons`' sorted list), else None."""
    if not isinstance(found, Sequence) or not all(isinstance(p, PolysemanticNeuron) for p in found):
        raise TypeError(f"expected a list of PolysemanticNeuron, got {found!r:.80}")
    if len(pair) != 2:
        raise ValueError(f"expected a pair of two concepts, got {pair!r}")
    for concept in pair:
        check_str(concept, "pair", allow_empty=False)
    return next((p for p in found if set(p.concepts) == set(pair)), found[0] if found else None)


@dataclass(frozen=True)
class SharedFeatureStudy:
    """The feature that fires on every prompt (`shared_feature`), measured on held-out text:
    the share of tokens it fires on (`density`) and of its activation on each concept."""

    feature: SharedFeature
    texts: list[str]
    density: float
    shares: dict[str, float]

    @property
    def values(self) -> dict[str, float]:
        """Glue names and numbers: shared_feature, shared_density, shared_<concept>."""
        out: dict[str, float] = {
            "shared_feature": self.feature.index,
            "shared_density": self.density,
        }
        out.update({f"shared_{c}": share for c, share in self.shares.items()})
        return out

    @property
    def lines(self) -> list[str]:
        """What chapter 5 prints about the feature."""
        shares = {c: f"{v:.1%}" for c, v in self.shares.items()}
        return [
            f"feature {self.feature.index}: max activation {self.feature.max_acts} on {self.texts}",
            f"on held-out text it fires on {self.density:.1%} of tokens; activation by "
            f"concept: {shares}",
        ]


def study_shared_feature(model, sae, scan: ScriptScan, texts: Sequence[str]) -> SharedFeatureStudy:
    """Find the feature whose weakest max activation over `texts` is largest (how the seed
    paper's feature 42 was found), then measure its density and concept shares on `scan`."""
    check_strings(texts, "texts")
    if not isinstance(scan, ScriptScan):
        raise TypeError(f"expected a ScriptScan, got {type(scan).__name__}")
    shared = shared_feature(model, sae, texts)
    shares = concept_shares(scan, shared.index)
    density = float(scan.feature_fires[shared.index].sum() / len(scan.group))
    return SharedFeatureStudy(shared, list(texts), density, shares)
