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

# Two workers for the tests that do not watch the wall clock (grouped by file, so a file's
# fixtures are built once), then the `serial` ones alone; fails if either part fails.
test: $(STAMP)
	@export QT_QPA_PLATFORM=offscreen; \
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile -m "not serial"; a=$$?; \
	$(VENV)/bin/python -m pytest -q -p no:xdist -m serial; b=$$?; \
	[ $$a -eq 0 ] && [ $$b -eq 0 ]

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/pipeline.py

# docs/screenshots/*.png: the real window driven through a tour under Xvfb
screenshot: $(STAMP)
	bash scripts/screenshot.sh

clean:
	rm -rf $(VENV) .pytest_cache out
