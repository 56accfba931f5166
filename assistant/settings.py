"""All configuration in one place: nested pydantic settings read from the environment.

Every field can be set with an environment variable named
``NARRATIVE_LENS_<SECTION>__<FIELD>`` (for instance
``NARRATIVE_LENS_MATCHING__TARGET_BENIGN_FPR=0.03``); the most used ones also
have short names (``NARRATIVE_LENS_DATA_DIR``, ``NARRATIVE_LENS_CHROMA_URL``,
``NARRATIVE_LENS_LLM_MODEL``) and command-line flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def config_file() -> Path:
    """The optional TOML config file: NARRATIVE_LENS_CONFIG, or ~/.config/narrative-lens/config.toml."""
    explicit = os.environ.get("NARRATIVE_LENS_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "narrative-lens" / "config.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "narrative-lens"


class EmbeddingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["use-m3", "openai"] = Field(
        "use-m3",
        description="'use-m3': the bundled multilingual Universal Sentence Encoder (offline); "
        "'openai': OpenAI-compatible embeddings (sends corpus and posts to the endpoint).",
    )
    model: str = Field("text-embedding-3-small", description="Embedding model name for the openai provider.")
    threads: int = Field(2, ge=1, description="BLAS threads for the bundled encoder.")


class IndexSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_tokens: int = Field(350, ge=50, description="Target passage length in tokens when ingesting reports.")
    chunk_overlap: int = Field(50, ge=0, description="Token overlap between consecutive passages.")
    encoding: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")
    collection_prefix: str = Field("narrative-lens", description="Prefix of every Chroma collection name.")


class MatchingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_benign_fpr: float = Field(
        0.08,
        gt=0,
        lt=1,
        description="Share of labelled benign examples allowed above the abstention threshold "
        "(the threshold is fitted on out-of-fold scores of the benign examples).",
    )
    prior: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of posts carrying a known narrative in the stream the scores are calibrated for "
        "(benign examples are weighted to it when calibrating).",
    )
    secondary_ratio: float = Field(
        0.6, gt=0, le=1, description="A second narrative is reported when its score is at least this share of the top score."
    )
    max_narratives: int = Field(3, ge=1, description="Most narratives reported for one post.")
    evidence_examples: int = Field(3, ge=0, description="Nearest annotated examples shown as evidence per narrative.")
    passages: int = Field(4, ge=0, description="Report passages retrieved per post.")
    min_passage_similarity: float = Field(
        0.25, ge=-1, le=1, description="Retrieved passages below this cosine similarity are not cited."
    )
    llm_rerank: bool = Field(
        False,
        description="In LLM mode, also ask the LLM which of the top candidate narratives the post carries "
        "(reported as llm_choice; the scores and the abstention stay the offline matcher's).",
    )


class TechniqueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    semeval_dir: Path = Field(
        REPO_ROOT.parent / "shared" / "data" / "semeval2021-task6",
        description="SemEval-2021 Task 6 data (training_set_task1/2.txt), read at fit time to train the technique model; "
        "without it, techniques come from the cards' cue patterns only.",
    )


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "offline", "llm"] = Field(
        "auto",
        description="'auto': use the LLM when OPENAI_API_KEY or OPENAI_BASE_URL is set; 'offline': never; 'llm': always try.",
    )
    model: str = Field("gpt-4o-mini", description="Chat model name sent to the OpenAI-compatible endpoint.")
    temperature: float = Field(0.2, ge=0, le=2, description="sampling temperature of the LLM writer (low: answers keep close to the cited passages)")
    connect_timeout_s: float = Field(3.0, gt=0, description="Time allowed to connect to the endpoint.")
    read_timeout_s: float = Field(
        8.0, gt=0, description="Longest wait for the next piece of the answer before falling back to offline."
    )
    max_retries: int = Field(2, ge=0, description="Retries on rate limits and transient errors (with backoff).")
    deadline_s: float = Field(
        10.0, gt=0, description="Wall-clock limit for an LLM answer, retries included; then the offline answer is given."
    )
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles with each retry.")
    context_tokens: int = Field(8192, ge=512, description="The model's context window.")
    answer_tokens: int = Field(400, ge=32, description="Longest answer requested from the model.")
    min_kept_sentences: int = Field(
        2, ge=1, description="Fewer cited sentences than this after the citation check: the offline answer is used."
    )
    judge_faithfulness: bool = Field(
        True,
        description="In `eval --mode llm`, the model judges whether each cited sentence is supported by its passage "
        "(off: embedding similarity only).",
    )


class AppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_post_chars: int = Field(
        20_000, ge=100, description="Longer posts are cut to this many characters, with a notice."
    )


class Settings(BaseSettings):
    """Root settings; the components are built from these and nothing else."""

    model_config = SettingsConfigDict(
        env_prefix="NARRATIVE_LENS_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the index and ingested documents live.",
    )
    corpus_dir: Path = Field(REPO_ROOT / "corpus", description="The knowledge base (cards, sources, examples).")
    user_examples: Path | None = Field(
        None, description="Extra labelled examples (JSONL) that join the index; default DATA_DIR/user-examples.jsonl."
    )
    chroma_url: str | None = Field(
        None, description="Use a Chroma server (http://host:port) instead of the embedded store."
    )
    embeddings: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    matching: MatchingSettings = MatchingSettings()
    techniques: TechniqueSettings = TechniqueSettings()
    llm: LLMSettings = LLMSettings()
    app: AppSettings = AppSettings()

    @model_validator(mode="after")
    def _short_names(self) -> "Settings":
        # NARRATIVE_LENS_LLM_MODEL is the documented short name for llm.model.
        model = os.environ.get("NARRATIVE_LENS_LLM_MODEL")
        if model and "model" not in self.llm.model_fields_set:
            self.llm = self.llm.model_copy(update={"model": model})
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags beat the environment, which beats the config file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file()))

    @property
    def user_examples_path(self) -> Path:
        return self.user_examples or (self.data_dir / "user-examples.jsonl")
