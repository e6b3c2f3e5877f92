# ssdconvert: every target bootstraps its own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

bs    ?= 16
soc   ?= Ascend310P3
model ?= ssd-resnet34
BUILD ?= build
ONNX   = $(BUILD)/$(subst -,_,$(model))_bs$(bs).onnx

.PHONY: help venv test demo onnx clean

help:
	@echo "make test            create .venv, install, run the test suite"
	@echo "make demo            run the main job on the embedded synthetic data"
	@echo "make onnx bs=16      export $(BUILD)/ssd_resnet34_bs16.onnx (dynamic batch, validated at bs)"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/ssdconvert run --workdir $(BUILD)/demo

onnx: $(STAMP)
	$(BIN)/ssdconvert export --model $(model) --bs $(bs) --output $(ONNX)

clean:
	rm -rf $(BUILD) .pytest_cache

# Ascend .om from the exported ONNX (exports it first if missing): make om bs=16 soc=Ascend310P3
# Extra ATC options: make om bs=16 soc=Ascend310P3 ATCFLAGS="--precision force_fp32 --aipp"
OM       = $(BUILD)/$(subst -,_,$(model))_bs$(bs)
ATCFLAGS ?=
.PHONY: om
om: $(STAMP)
	@test -f $(ONNX) || $(MAKE) --no-print-directory onnx bs=$(bs) model=$(model) BUILD=$(BUILD)
	$(BIN)/ssdconvert atc --model $(model) --onnx $(ONNX) --soc $(soc) --bs $(bs) --output $(OM) $(ATCFLAGS)

# Inference in the ais_bench layout: make infer bs=16 [infer_model=build/x.xml] [ssd_bin=build/ssd_bin]
# (exports the ONNX first if missing; .om -> ais_bench, .onnx -> ONNX Runtime, .xml -> OpenVINO)
infer_model ?= $(ONNX)
ssd_bin     ?= $(BUILD)/ssd_bin
result      ?= $(BUILD)/result
.PHONY: infer bench bench-overhead
infer: $(STAMP)
	@test -f $(infer_model) || $(MAKE) --no-print-directory onnx bs=$(bs) model=$(model) BUILD=$(BUILD)
	$(BIN)/ssdconvert infer --model $(infer_model) --input $(ssd_bin) --output $(result) --batchsize $(bs)

# Standard batch-size sweep (ONNX Runtime + OpenVINO) -> benchmarks/results/: make bench [BENCHFLAGS="--bs 1,8 --duration 3"]
BENCHFLAGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/sweep.py $(BENCHFLAGS)

# Runner vs bare-runtime loops and % of the FP32 matmul peak -> benchmarks/results/runner_overhead.md
bench-overhead: $(STAMP)
	$(BIN)/python benchmarks/runner_overhead.py $(BENCHFLAGS)

# COCO val2017 -> $(ssd_bin) (.bin per annotated image + manifest.json): make preprocess coco=path/to/coco
# (writes coco/annotations/bbox_only_instances_val2017.json with prepare-json --keep-keys if missing)
# Extra flags: make preprocess PREPROCESSFLAGS="--dtype uint8 --workers 4"
coco            ?= coco
BBOX_ONLY        = $(coco)/annotations/bbox_only_instances_val2017.json
PREPROCESSFLAGS ?=
.PHONY: preprocess
preprocess: $(STAMP)
	@test -f $(BBOX_ONLY) || $(BIN)/ssdconvert prepare-json --keep-keys $(coco)/annotations/instances_val2017.json $(BBOX_ONLY)
	$(BIN)/ssdconvert preprocess --model $(model) --val_annotation $(BBOX_ONLY) --data_root $(coco)/val2017 --save_path $(ssd_bin) $(PREPROCESSFLAGS)

# COCO mAP of $(result) (manifest and annotation file found through $(result)_summary.json):
# make eval [EVALFLAGS="--nms ascend --detections build/detections.json"]
EVALFLAGS ?=
.PHONY: eval
eval: $(STAMP)
	$(BIN)/ssdconvert eval --bin_path $(result) $(EVALFLAGS)
