# `make demo` and `make test` set everything up on first use (scripts/setup.sh).
.PHONY: demo test setup bench screenshot clean

VENV := .venv
STAMP := $(VENV)/.emotiond-setup

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

# The main job: the GUI on the camera when there is a screen, else a headless run; the bundled
# demo clip when no camera is present.
demo: $(STAMP)
	$(VENV)/bin/emotiond

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/pipeline.py

# docs/screenshots/*.png: the real window driven through a tour under Xvfb
screenshot: $(STAMP)
	bash scripts/screenshot.sh

clean:
	rm -rf $(VENV) .pytest_cache out
