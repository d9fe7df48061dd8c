"""Which card should I rent? (issue 16 part 3): `fit --gpu a,b,c` ranks card kinds, `estimate --gpu a,b,c` prints
one row per card, `--price` pairs or a prices file; the chosen card's plan file goes through check and export."""
import json

import pytest
from typer.testing import CliRunner

from oomplan.cli.app import app

runner = CliRunner()
CARDS = "a100-80g,h100,l40s,rtx-4090"


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "100"})


def fit_json(gpu, *flags):
    r = run("fit", "llama-3-8b", "--gpu", gpu, "--ctx", "8k", "--json", *flags)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def by_gpus():
    return fit_json(CARDS, "--objective", "gpus")


def test_each_card_row_is_that_cards_own_best_plan(by_gpus):
    assert [c["gpu"]["name"] for c in by_gpus["cards"]] and by_gpus["objective"] == "gpus"
    assert {c["gpu"]["ref"] for c in by_gpus["cards"]} == set(CARDS.split(","))
    for card in by_gpus["cards"]:
        alone = fit_json(card["gpu"]["ref"], "--objective", "gpus")
        assert card["fits"] and card["best"] == alone["plans"][0]
        assert card["num_considered"] == alone["num_considered"] and card["num_fitting"] == alone["num_fitting"]


def test_ranked_across_cards_by_the_objective(by_gpus):
    rows = [c["best"] for c in by_gpus["cards"]]
    # gpus: fewest GPUs, then quality (grade), then the fastest
    keys = [(b["num_gpus"], b["quality_risk"]["grade"], -b["decode_tokens_per_s"]) for b in rows]
    assert keys == sorted(keys) and [c["rank"] for c in by_gpus["cards"]] == [1, 2, 3, 4]
    fast = fit_json(CARDS, "--objective", "throughput")
    tps = [c["best"]["decode_tokens_per_s"] for c in fast["cards"]]
    assert tps == sorted(tps, reverse=True)


def test_cost_needs_a_price_per_card_and_ranks_by_dollars_per_mtok(tmp_path):
    r = run("fit", "llama-3-8b", "--gpu", CARDS, "--ctx", "8k", "--objective", "cost", "--price", "h100=2.49")
    assert r.exit_code == 2
    assert r.stderr == ("error: --objective cost: no price for a100-80g, l40s, rtx-4090; give --price CARD=USD_PER_GPU_HOUR "
                        "(repeatable or comma-separated) or --price prices.yaml (oomplan ships no prices)\n")
    prices = tmp_path / "prices.yaml"
    prices.write_text("schema_version: 1\nprices:\n"
                      "  h100-sxm: {usd_per_gpu_hour: 2.49, source: 'example quote, 2026-12-01'}\n"
                      "  a100-80g: {usd_per_gpu_hour: 1.79, source: 'example quote, 2026-12-01'}\n")
    data = fit_json(CARDS, "--objective", "cost", "--price", str(prices), "--price", "l40s=0.99,rtx-4090=0.40")
    got = {c["gpu"]["name"]: (c["usd_per_gpu_hour"], c["price_source"]) for c in data["cards"]}
    assert got == {"h100-sxm": (2.49, "example quote, 2026-12-01"), "a100-80g-sxm": (1.79, "example quote, 2026-12-01"),
                   "l40s": (0.99, "--price"), "rtx-4090": (0.40, "--price")}
    costs = [c["usd_per_million_tokens"] for c in data["cards"]]
    assert costs == sorted(costs)
    for c in data["cards"]:
        assert c["usd_per_million_tokens"] == pytest.approx(c["best"]["gpu_hours_per_million_tokens"] * c["usd_per_gpu_hour"], rel=1e-12)


def test_price_errors_name_the_flag(tmp_path):
    r = run("fit", "llama-3-8b", "--gpu", CARDS, "--price", "2.49")
    assert r.exit_code == 2 and r.stderr.startswith("error: --price 2.49: 4 cards are compared; give a price per card")
    r = run("fit", "llama-3-8b", "--gpu", CARDS, "--price", "h100=cheap")
    assert r.exit_code == 2 and r.stderr.startswith("error: --price: 'h100=cheap': the price must be US dollars per GPU-hour")
    r = run("fit", "llama-3-8b", "--gpu", CARDS, "--price", "h99=1")
    assert r.exit_code == 2 and r.stderr.startswith("error: --price: no GPU named 'h99'")
    unsourced = tmp_path / "p.yaml"
    unsourced.write_text("schema_version: 1\nprices:\n  h100: {usd_per_gpu_hour: 2.49}\n")
    r = run("fit", "llama-3-8b", "--gpu", CARDS, "--price", str(unsourced))
    assert r.exit_code == 2 and "source" in r.stderr and str(unsourced) in r.stderr
    r = run("fit", "llama-3-8b", "--gpu", "h100,,l4")
    assert r.exit_code == 2 and "empty item" in r.stderr


def test_chosen_card_plan_file_checks_and_exports(tmp_path):
    out = tmp_path / "plan.yaml"
    r = run("fit", "llama-3-8b", "--gpu", CARDS, "--ctx", "8k", "--objective", "gpus", "--pick", "2", "-o", str(out))
    assert r.exit_code == 0 and r.stderr == f"wrote plan #1 to {out}\n"
    second = fit_json(CARDS, "--objective", "gpus")["cards"][1]
    text = out.read_text()
    assert f"gpu:\n  ref: {second['gpu']['ref']}\n" in text
    check = run("check", str(out))
    assert check.exit_code == 0 and check.stdout.splitlines()[-1].startswith("PASS: ")
    assert f"per GPU on {second['gpu']['name']}" in check.stdout.splitlines()[-1]
    export = run("export", str(out), "--to", "vllm")
    assert export.exit_code == 0 and "vllm serve" in export.stdout


def test_estimate_one_row_per_card_with_raw_capacities(tmp_path):
    r = run("estimate", "llama-3-8b", "--gpu", "h100,l4,24GiB", "--ctx", "32k", "--batch", "4", "--json")
    assert r.exit_code == 0, r.output
    cards = json.loads(r.stdout)["cards"]
    assert [c["gpu_ref"] for c in cards] == ["h100", "l4", "24GiB"]
    for c in cards:
        alone = json.loads(run("estimate", "llama-3-8b", "--gpu", c["gpu_ref"], "--ctx", "32k", "--batch", "4", "--json").stdout)
        assert {k: v for k, v in c.items() if k != "gpu_ref"} == alone
    r = run("estimate", "llama-3-8b", "--gpu", "l4,rtx-4090", "--ctx", "32k", "--batch", "16")
    lines = r.stdout.splitlines()
    assert r.exit_code == 1  # no card fits
    assert [line.split("│")[1].strip() for line in lines if line.startswith("│")] == ["l4", "rtx-4090"]
    assert all(line.rstrip().endswith("does not fit │") for line in lines if line.startswith("│"))


def test_curve_one_row_per_card_is_each_cards_cliff():
    r = run("curve", "llama-3.1-8b", "--gpu", "l4,h100", "--compare", "kv_dtype=fp8", "--json")
    assert r.exit_code == 0, r.output
    cards = json.loads(r.stdout)["cards"]
    for c in cards:
        alone = json.loads(run("curve", "llama-3.1-8b", "--gpu", c["gpu_ref"], "--compare", "kv_dtype=fp8", "--json").stdout)
        assert [x["cliff"] for x in c["curves"]] == [x["cliff"] for x in alone["curves"]]
    r = run("curve", "llama-3.1-8b", "--gpu", "l4,h100")
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in r.stdout.splitlines() if line.startswith("│")]
    l4 = [x["cliff"]["last_fit"] for x in cards[0]["curves"]][0]
    assert rows == [["l4", "22.0G", f"{l4}" if l4 % 1024 else f"{l4 // 1024}k"], ["h100-sxm", "79.2G", "128k+"]]
    r = run("curve", "llama-3.1-8b", "--gpu", "l4,h100", "--png", "x.png")
    assert r.exit_code == 2 and "one chart is one card" in r.stderr


SMALL = ["qwen2.5-0.5b", "--ctx", "4k", "--weights", "bf16", "--kv-dtype", "bf16", "--no-dms", "--max-gpus", "1"]
# Qwen2.5-0.5B (config: hidden 896, 24 layers, 14 heads / 2 KV heads of 64, intermediate 4864, vocab 151936, tied,
# q/k/v biases): 151936 x 896 + 24 x (896x896+896 + 2 x (896x128+128) + 896x896 + 3 x 896x4864 + 2 x 896) + 896
# = 494,032,768 params. A decode step on one GPU reads them in bf16 and the bf16 KV at 4k
# (24 layers x 2 x 2 heads x 64 x 2 B x 4096 = 50,331,648 B): tok/s = bandwidth / 1,038,397,184 B.
STEP_BYTES = 2 * 494_032_768 + 24 * 2 * 2 * 64 * 2 * 4096


def test_gpu_all_ranks_every_profile_and_top_bounds_the_rows():
    from oomplan.profiles import load_gpu, profile_names

    names = profile_names("hardware_profiles")
    # every card holds it on one GPU, lossless: ranked by decode speed, i.e. bandwidth (ties: the order given)
    expected = sorted(names, key=lambda n: -load_gpu(n).memory_bandwidth_bytes_per_s)
    everything = json.loads(run("fit", *SMALL, "--gpu", "all", "--top", "100", "--json").stdout)
    assert everything["num_cards"] == len(names) and [c["gpu"]["ref"] for c in everything["cards"]] == expected
    for c in everything["cards"]:
        bandwidth = load_gpu(c["gpu"]["ref"]).memory_bandwidth_bytes_per_s
        assert c["best"]["decode_tokens_per_s"] == pytest.approx(bandwidth / STEP_BYTES, rel=1e-12)
    assert [c["gpu"]["ref"] for c in json.loads(run("fit", *SMALL, "--gpu", "all", "--top", "3", "--json").stdout)["cards"]] == expected[:3]
    r = run("fit", *SMALL, "--gpu", "all", "--top", "3")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].rstrip() == f"qwen2.5-0.5b · ctx 4k x batch 1 · {len(names)} cards by quality"
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert rows == [[str(i + 1), c["gpu"]["name"], "1", "bf16 · KV bf16", f"{c['best']['per_gpu']['total_bytes'] / 2**30:.1f}G", "lossless",
                     f"{c['best']['decode_tokens_per_s']:,.0f}"] for i, c in enumerate(everything["cards"][:3])]
    assert lines[-1] == (f"{len(names)} cards searched, {len(names)} with a plan that fits; showing 3, --top N shows more; "
                         "each row is that card's best plan by quality (oomplan fit MODEL --gpu CARD shows the others)")


def test_gpu_all_where_nothing_fits_exits_1():
    r = run("fit", "llama-3.1-405b", "--gpu", "all", "--max-gpus", "1", "--host-mem", "0", "--weights", "bf16", "--top", "2")
    from oomplan.profiles import profile_names

    n = len(profile_names("hardware_profiles"))
    assert r.exit_code == 1
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in r.stdout.splitlines() if line.startswith("│")]
    assert rows == [["-", name, "-", "nothing fits", "-", "-", "-"] for name in profile_names("hardware_profiles")[:2]]
    assert r.stdout.splitlines()[-1].startswith(f"{n} cards searched, 0 with a plan that fits; showing 2, --top N shows more; ")


def test_estimate_and_curve_take_gpu_all_one_row_per_card():
    from oomplan.profiles import load_gpu, profile_names

    names = [load_gpu(n).name for n in profile_names("hardware_profiles")]
    r = run("estimate", "qwen2.5-0.5b", "--gpu", "all", "--ctx", "4k")
    assert r.exit_code == 0, r.output
    assert [line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│")] == names
    r = run("curve", "qwen2.5-0.5b", "--gpu", "all")
    assert r.exit_code == 0, r.output
    assert [line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│")] == names


def test_pick_beyond_the_cards_that_fit_is_refused_before_printing(tmp_path):
    out = tmp_path / "plan.yaml"
    r = run("fit", "llama-3-8b", "--gpu", "h100,l40s", "--ctx", "8k", "--pick", "3", "-o", str(out))
    assert r.exit_code == 2 and r.stdout == "" and not out.exists()
    assert r.stderr == "error: --pick 3: only 2 cards fit; give --pick 1 to 2\n"
