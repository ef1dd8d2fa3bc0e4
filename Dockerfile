# NFA Explorer web app (Hugging Face Space, sdk: docker): python -m app.cli web on 0.0.0.0:7860.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    MPLBACKEND=Agg

# Spaces run containers as uid 1000.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# The CPU build of the pinned torch first (the default wheel pulls gigabytes of CUDA
# libraries a CPU Space never uses; if that index lacks the pin, the default wheel is
# used), then the same requirements.txt as everywhere else.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements.txt .
RUN TORCH_PIN="$(grep -E '^torch==' requirements.txt)" \
 && (pip install --index-url "$TORCH_INDEX" "$TORCH_PIN" \
     || echo "no CPU wheel for $TORCH_PIN on $TORCH_INDEX: installing the default wheel") \
 && pip install -r requirements.txt

COPY --chown=user:user . .
USER user
ENV HOME=/home/user

EXPOSE 7860
CMD ["python", "-m", "app.cli", "web", "--host", "0.0.0.0", "--port", "7860"]
