# Hugging Face Space (sdk: docker, app_port: 7860). The same install step as the README.
FROM python:3.11-slim

RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    HF_HOME=/home/user/.cache/huggingface \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PLAYGROUND_DB_URL=sqlite:////home/user/app/data/playground.sqlite
WORKDIR $HOME/app

# The README's install step. (On a GPU Space pip takes torch's CUDA build; the app uses CUDA
# when it is there and the CPU otherwise.)
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt

COPY --chown=user . .
RUN mkdir -p data

EXPOSE 7860
CMD ["python", "app.py"]
