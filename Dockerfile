# The inference image: the models `dvc repro` built, served over the Open Inference Protocol.
#   docker build -t quantpipe .                      (after `dvc repro` or `dvc pull`)
#   docker run -p 8080:8080 quantpipe                (serve every model on :8080)
#   docker run -i quantpipe predict --model q8 < rows.csv > predictions.csv

# Stage 1: quantpipe's wheel, with its compiled kernels (quantpipe/_kernels.c, setup.py). The
# compiler stays in this stage; the image gets the wheel alone.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# A C compiler, and Python's headers where the base image lacks them (the official image has
# them under /usr/local/include). The compiler's version changes no bit of a prediction: the
# kernels are built without contraction (setup.py), and each operation is IEEE's.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if [ ! -f "$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
        apt-get install -y --no-install-recommends python3-dev; fi \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY quantpipe/ quantpipe/
RUN pip wheel --no-deps --wheel-dir /wheels .

# Stage 2: the inference image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code or model change does not reinstall them.
COPY requirements-serve.txt .
RUN pip install --no-cache-dir -r requirements-serve.txt

COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels

# Only the pickle-free model files and the drift reference; models/fp64.joblib stays out.
COPY models/fp64.npz models/
COPY models/quantized/ models/quantized/
COPY models/reference.npz models/
# The digits networks (served as mnist-fp32, mnist-q8, ...): numpy inference, no PyTorch.
COPY models/mnist/ models/mnist/

# Which models these are: the digest of the hashes dvc.lock records for models/
# (`python .ci/lock.py digest models`); CI passes it and checks it.
ARG MODELS=unknown
LABEL io.quantpipe.models=$MODELS

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin quantpipe
USER 10001

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2)"]

ENTRYPOINT ["quantpipe"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
