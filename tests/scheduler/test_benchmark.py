from benchmarks.placement import main


def test_quick_benchmark_runs_and_reports_ratios() -> None:
    result = main(["--quick"])
    large = result["large"]
    assert isinstance(large, dict) and large["placed"] == large["tasks"]
    for key in ("us_ratio_large_vs_small", "speedup_vs_naive", "meets_target"):
        assert key in result
