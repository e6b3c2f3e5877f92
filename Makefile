# ssdconvert: every target bootstraps its own virtual environment.
# Targets follow the pipeline: preprocess -> onnx -> om -> infer -> eval -> bench.
PYTHON ?= python3
VENV   ?= .venv
# PyTorch's CPU wheel index, for machines where PyPI's torch==2.13.0 is the multi-GB CUDA build:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

model ?= ssd-resnet34
bs    ?= 16
soc   ?= Ascend310P3
BUILD ?= build
coco  ?= coco
ONNX   = $(BUILD)/$(subst -,_,$(model))_bs$(bs).onnx
OM     = $(BUILD)/$(subst -,_,$(model))_bs$(bs)
BBOX_ONLY   = $(coco)/annotations/bbox_only_instances_val2017.json
ssd_bin     ?= $(BUILD)/ssd_bin
result      ?= $(BUILD)/result
infer_model ?= $(ONNX)

PREPROCESSFLAGS ?=
ATCFLAGS        ?=
EVALFLAGS       ?=
BENCHFLAGS      ?=

.PHONY: help venv test test-heavy demo preprocess onnx om infer eval bench bench-overhead clean

help:
	@echo "make test                      create .venv, install, run the test suite (without the heavy tests)"
	@echo "make test-heavy                the heavy tests only (Faster R-CNN exports and end-to-end runs)"
	@echo "make demo                      the whole pipeline on 43 real COCO images, ST's SSD (build/demo/report.md)"
	@echo "make demo data=synthetic       the same on generated images, random weights (build/demo-synthetic)"
	@echo "make preprocess coco=DIR       COCO val2017 -> $(ssd_bin) (+ bbox-only json if missing)"
	@echo "make onnx bs=16                export $(BUILD)/ssd_resnet34_bs16.onnx (dynamic batch, validated at bs)"
	@echo "make om bs=16 soc=Ascend310P3  ATC .om from the exported ONNX (exports it first if missing)"
	@echo "make infer bs=16               infer_model over $(ssd_bin) -> $(result) (ais_bench layout)"
	@echo "make eval                      COCO mAP of $(result)"
	@echo "make bench                     standard ORT + OpenVINO sweep -> benchmarks/results/"
	@echo "make bench-overhead            runners vs bare runtime loops, % of the FP32 matmul peak"
	@echo "variables: model=$(model) bs=$(bs) soc=$(soc) coco=$(coco) BUILD=$(BUILD)"
	@echo "           TORCH_INDEX=https://download.pytorch.org/whl/cpu  CPU-only torch where PyPI gives the CUDA build"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -c constraints.txt -e '.[test,cluster]'
	touch $@

venv: $(STAMP)

# two workers, one test file each at a time (module fixtures stay in one process); TEST_WORKERS=0 runs serially
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test-heavy: $(STAMP)
	$(BIN)/python -m pytest -q -m heavy

# data=real (default): ST's SSD-MobileNetV2-FPNLite on the 43 vendored COCO images and their real annotations, FP32
# and INT8 (calibrated on calibration-85) on ONNX Runtime and OpenVINO, plus ST's own INT8 release as is;
# data=synthetic: the random-weight SSD-ResNet34 on generated images (every backend whose tools are here)
data     ?= real
REALDATA  = ssdconvert/realdata
ifeq ($(data),real)
DEMOFLAGS = --model ssd-mobilenet-v2-fpnlite --annotation $(REALDATA)/coco-val2014-43/annotations/instances_val2014_43.json \
	--image-dir $(REALDATA)/coco-val2014-43/val2014 --calib $(REALDATA)/calibration-85 \
	--release vendor-int8=$(REALDATA)/ssd-mobilenet-v2-fpnlite/ssd_mobilenet_v2_fpnlite_10_256_int8.onnx \
	--backends onnxruntime,openvino --precisions fp32,int8 --bs 1,8 --bench-duration 1 --workdir $(BUILD)/demo
else ifeq ($(data),synthetic)
DEMOFLAGS = --workdir $(BUILD)/demo-synthetic
else
DEMOFLAGS = $(error data=$(data): choose real or synthetic)
endif

demo: $(STAMP)
	$(BIN)/ssdconvert run $(DEMOFLAGS)

# COCO val2017 -> $(ssd_bin); extra flags: PREPROCESSFLAGS="--dtype uint8 --workers 4"
preprocess: $(STAMP)
	@test -f $(BBOX_ONLY) || $(BIN)/ssdconvert prepare-json --keep-keys $(coco)/annotations/instances_val2017.json $(BBOX_ONLY)
	$(BIN)/ssdconvert preprocess --model $(model) --val_annotation $(BBOX_ONLY) --data_root $(coco)/val2017 --save_path $(ssd_bin) $(PREPROCESSFLAGS)

onnx: $(STAMP)
	$(BIN)/ssdconvert export --model $(model) --bs $(bs) --output $(ONNX)

# extra ATC options: ATCFLAGS="--precision force_fp32 --aipp"
om: $(STAMP)
	@test -f $(ONNX) || $(MAKE) --no-print-directory onnx bs=$(bs) model=$(model) BUILD=$(BUILD)
	$(BIN)/ssdconvert atc --model $(model) --onnx $(ONNX) --soc $(soc) --bs $(bs) --output $(OM) $(ATCFLAGS)

# .om -> ais_bench, .onnx -> ONNX Runtime, .xml -> OpenVINO: make infer infer_model=build/x.xml
infer: $(STAMP)
	@test -f $(infer_model) || $(MAKE) --no-print-directory onnx bs=$(bs) model=$(model) BUILD=$(BUILD)
	$(BIN)/ssdconvert infer --model $(infer_model) --input $(ssd_bin) --output $(result) --batchsize $(bs)

# extra flags: EVALFLAGS="--nms ascend --detections build/detections.json"
eval: $(STAMP)
	$(BIN)/ssdconvert eval --bin_path $(result) $(EVALFLAGS)

# extra flags: BENCHFLAGS="--bs 1,8 --duration 3"
bench: $(STAMP)
	$(BIN)/python benchmarks/sweep.py $(BENCHFLAGS)

bench-overhead: $(STAMP)
	$(BIN)/python benchmarks/runner_overhead.py $(BENCHFLAGS)

clean:
	rm -rf $(BUILD) .pytest_cache
