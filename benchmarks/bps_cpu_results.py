"""The earlier name of ``benchmarks/bps_results.py`` (CPU scale), kept so that the command recorded in
``results/bps_fashion-mnist_cpu.json`` still runs."""
import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("bps_results.py")), run_name="__main__")
