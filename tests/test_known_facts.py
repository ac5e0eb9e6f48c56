"""Chapter 8's online path without the hub: the shipped known facts, the prompt builder on a
GPT-2-style byte-level BPE, tracing and ROME on a random GPT-2-shaped model, the offline fallback."""

import json
import time

import pytest
import torch
from huggingface_hub import constants
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

from tutorial_sae.analysis import fact_prompts as fp
from tutorial_sae.analysis import rome, tracing
from tutorial_sae.data import hub, known_facts
from tutorial_sae.errors import HubUnavailableError
from tutorial_sae.models import facts, loading

KNOWN = known_facts.load_known_facts()


def test_the_shipped_file_validates_and_bad_records_are_named():
    assert 20 <= len(KNOWN) <= 40
    assert KNOWN.context_prefixes[0] == "" and KNOWN.essence == "{subject} is a"
    for f in KNOWN.facts:
        assert f.prompt.count("{subject}") == 1 and f.target_true != f.target_new
        assert 1 <= len(f.paraphrases) and 1 <= len(f.neighbourhood)
    data = json.loads(known_facts.known_facts_path().read_text(encoding="utf-8"))
    data["facts"][3]["prompt"] = "Big Ben is located in"
    with pytest.raises(ValueError, match="fact 3: expected 'prompt' to hold \\{subject\\} once"):
        known_facts.parse_known_facts(data)
    data["facts"][3] = {**data["facts"][4], "target_new": data["facts"][4]["target_true"]}
    with pytest.raises(ValueError, match="fact 3: expected target_new to differ"):
        known_facts.parse_known_facts(data)


def _texts():
    out = []
    for f in KNOWN.facts:
        out.append(f.text + " " + f.target_true)
        out.append(f.prompt.replace("{subject}", f.subject) + " " + f.target_new)
        out += [p.replace("{subject}", f.subject) for p in f.paraphrases]
        out += [n.prompt.replace("{subject}", n.subject) for n in f.neighbourhood]
        out += [
            p + " " + KNOWN.essence.replace("{subject}", f.subject) for p in KNOWN.context_prefixes
        ]
    return out


@pytest.fixture(scope="module")
def bpe():
    """A GPT-2-style tokenizer (byte-level BPE, leading spaces in tokens) trained on the prompts."""
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    objects = " ".join(o for f in KNOWN.facts for o in (f.target_true, f.target_new))
    raw.train_from_iterator(_texts() * 3 + [objects] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|endoftext|>")


class Slow:
    """The same tokenizer seen through `.encode` only (no offsets): the builder's other path."""

    def __init__(self, tok):
        self.tok, self.bos_token_id = tok, tok.bos_token_id

    def encode(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("slow", [False, True])
def test_the_builder_finds_the_subject_tokens_with_leading_spaces(bpe, slow):
    tok = Slow(bpe) if slow else bpe
    p = fp.build_prompt(tok, "The {subject} is located in the city of", "Eiffel Tower", "Paris")
    start, end = p.subject_pos
    assert p.ids[0] == bpe.bos_token_id and end - start >= 2  # a multi-token subject
    assert bpe.decode(p.ids[start:end]) == " Eiffel Tower"  # the space belongs to the subject
    assert bpe.decode(p.ids[:start]) == "<|endoftext|>The"
    assert bpe.decode(p.ids[end:]) == " is located in the city of"
    assert bpe.decode([p.target]) == " Paris" and p.last_subject == end - 1
    q = fp.build_prompt(tok, "Big Ben is located in the city of", "Big Ben", "London", False)
    assert q.subject_pos[0] == 0 and bpe.decode(q.ids[: q.subject_pos[1]]) == "Big Ben"
    with pytest.raises(ValueError, match="expected the subject 'Big Ban' in the prompt"):
        fp.build_prompt(tok, "Big Ben is located in", "Big Ban", "London")
    with pytest.raises(ValueError, match="one token"):
        fp.build_prompt(tok, "Big Ben is located in", "Big Ben", "Xyzzyq")


def test_every_known_fact_builds_the_same_on_both_paths(bpe):
    fast = fp.all_known_fact_prompts(bpe, KNOWN)
    slow = fp.all_known_fact_prompts(Slow(bpe), KNOWN)
    assert len(fast) == len(KNOWN)
    for a, b in zip(fast, slow, strict=True):
        assert a == b
        assert bpe.decode(a.clean.ids[slice(*a.clean.subject_pos)]).strip() == a.fact.subject
        assert len(a.rewrite) == len(a.essence) == len(KNOWN.context_prefixes)
        assert all(p.target == a.new_id for p in a.rewrite)


@pytest.fixture(scope="module")
def gpt2_like(bpe):
    torch.set_num_threads(1)
    cfg = HookedTransformerConfig(
        n_layers=4,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_mlp=128,
        d_vocab=len(bpe),
        n_ctx=64,
        act_fn="gelu_new",
        normalization_type="LN",
        positional_embedding_type="standard",
        seed=0,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    model.eval()
    return model


def test_tracing_runs_on_a_gpt2_shaped_model_through_the_chapter_path(bpe, gpt2_like):
    prompts = [kp.clean for kp in fp.all_known_fact_prompts(bpe, KNOWN)[:3]]
    std = tracing.prompts_noise_std(gpt2_like, prompts)
    traces = tracing.trace_prompts(gpt2_like, prompts, std, n_samples=3, kinds=("mlp", "resid"))
    for p, t in zip(prompts, traces, strict=True):
        assert t.restored["mlp"].shape == (4, len(p.ids))
        assert t.restored["resid"][-1, -1].item() == pytest.approx(t.p_clean, rel=1e-4)
    avg = tracing.average_traces(traces)
    assert avg.indirect["mlp"].shape == (4, len(tracing.CATEGORIES))
    assert 0 <= tracing.peak_layer(avg) < 4
    with pytest.raises(ValueError, match="category"):
        tracing.peak_layer(avg, category="middle")


def test_rome_edits_a_gpt2_shaped_model_and_its_algebra_holds(bpe, gpt2_like):
    kps = fp.all_known_fact_prompts(bpe, KNOWN)[:2]
    tokens = bpe(_texts()[:80], padding=False)["input_ids"]
    rows = torch.tensor([[bpe.bos_token_id] + ids[:11] for ids in tokens if len(ids) >= 11])
    layer, mlp = 1, gpt2_like.blocks[1].mlp
    C = rome.key_covariance(gpt2_like, layer, rows, pad_id=bpe.bos_token_id)
    assert C.shape == (128, 128)
    before = mlp.W_out.detach().clone()
    edit = rome.rome_edit(gpt2_like, layer, C, kps[0].rewrite, kps[0].essence, rome.ROME_PAPER)
    mapped = edit.k_star @ (before + edit.delta) + mlp.b_out.detach()
    torch.testing.assert_close(mapped, edit.v_star, rtol=1e-4, atol=1e-4)
    s = torch.linalg.svdvals(edit.delta)
    assert s[1] < 1e-5 * s[0]  # rank one, up to float32 rounding
    table = fp.rome_known_facts(gpt2_like, layer, C, kps)
    assert [r["subject"] for r in table] == [kp.fact.subject for kp in kps]
    assert all(0 <= r[m] <= 1 for r in table for m in ("efficacy", "paraphrase", "neighbourhood"))
    assert torch.equal(mlp.W_out, before)  # every edit was undone


def test_trace_known_facts_equals_the_chapters_old_cell(bpe, gpt2_like, monkeypatch):
    from tutorial_sae.analysis.known_fact_tracing import trace_known_facts

    monkeypatch.setattr(gpt2_like, "tokenizer", bpe)  # GPT-2 small carries its own
    traced = trace_known_facts(gpt2_like, KNOWN, n_known=2, n_samples=2, seed=3)
    # chapter 8's cell before the move, verbatim in substance
    shipped = fp.all_known_fact_prompts(bpe, KNOWN)
    ranks = fp.true_object_ranks(gpt2_like, [kp.clean for kp in shipped])
    known = [shipped[i] for i in ranks.argsort(stable=True).tolist()]
    std = tracing.prompts_noise_std(gpt2_like, [kp.clean for kp in shipped])
    avg = tracing.average_traces(
        tracing.trace_prompts(
            gpt2_like, [kp.clean for kp in known[:2]], std, 2, seed=3, kinds=("mlp",)
        )
    )
    assert traced.shipped == shipped and traced.known == known and len(known) == len(KNOWN)
    assert torch.equal(traced.ranks, ranks) and traced.noise_std == std
    assert list(traced.avg.indirect) == ["mlp"] and traced.avg.n_facts == 2
    torch.testing.assert_close(traced.avg.indirect["mlp"], avg.indirect["mlp"], rtol=0, atol=0)
    assert traced.avg.total_effect == avg.total_effect
    assert traced.layer == tracing.peak_layer(avg, "mlp", "last subject") and 0 <= traced.layer < 4
    known_ranks = [int(ranks[shipped.index(kp)]) for kp in traced.known]
    assert known_ranks == sorted(known_ranks)  # best-known first
    with pytest.raises(ValueError, match="n_known must be an int"):
        trace_known_facts(gpt2_like, KNOWN, n_known=0)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(loading, "_auto_choice", None)
    monkeypatch.setattr(hub, "_last_success", 0.0)


def test_auto_falls_back_to_the_fact_model_offline_and_gpt2_names_its_repo(offline, capsys):
    start = time.perf_counter()
    setup = facts.load_fact_setup("auto")
    assert setup.name == "facts" and setup.fact_model is not None and setup.known_facts is None
    assert "the fact model" in capsys.readouterr().out
    with pytest.raises(HubUnavailableError, match="openai-community/gpt2.*MODEL='facts'"):
        facts.load_fact_setup("gpt2")
    assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="chapter 8 model name"):
        facts.load_fact_setup("gpt-2")


def test_prose_key_tokens_are_bos_led_windows(bpe, monkeypatch):
    from tutorial_sae.data import corpus

    monkeypatch.setattr(corpus, "load_texts", lambda split, lang: _texts())
    rows = known_facts.prose_key_tokens(bpe, n_rows=8, seq_len=16)
    assert rows.shape == (8, 16) and torch.all(rows[:, 0] == bpe.bos_token_id)


def test_the_builder_reproduces_the_fact_worlds_own_prompts():
    from tutorial_sae.data.facts import FactWorld

    world = FactWorld()
    for s, r in [(7, 0), (3, 2), (11, 4)]:
        want = world.prompt(s, r)
        obj = world.tokenizer.vocab[want.target]
        verb = world.tokenizer.decode(want.ids[want.subject_pos[1] :])
        got = fp.build_prompt(world.tokenizer, "{subject} " + verb, world.subjects[s], obj)
        assert (got.ids, got.subject_pos, got.target) == (want.ids, want.subject_pos, want.target)
