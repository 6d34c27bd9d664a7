"""Settings, read once from the environment and `.env`, then passed down."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # An empty variable (a blank line in .env, `${SLACK_BOT_TOKEN:-}` in compose.yaml) is unset.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    database_url: str = "sqlite:///./downvote.db"
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_channel: str | None = None
    downvote_config: Path | None = None
    downvote_timezone: str = "UTC"
    downvote_max_body_bytes: int = Field(default=1_048_576, gt=0)
    # How long a worker owns an alert it is posting; a crashed worker's alerts wait this long.
    downvote_alert_lease_seconds: float = Field(default=60.0, gt=0)

    @field_validator("downvote_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _signing_secret_with_token(self) -> Settings:
        if self.slack_bot_token and not self.slack_signing_secret:
            raise ValueError("SLACK_SIGNING_SECRET is required when SLACK_BOT_TOKEN is set")
        return self

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.downvote_timezone)

    @property
    def preview_mode(self) -> bool:
        """No bot token: alerts and summaries go to the console instead of Slack."""
        return self.slack_bot_token is None

    @property
    def config_path(self) -> Path | None:
        """The configured file, else ./downvote.toml when it exists."""
        if self.downvote_config is not None:
            return self.downvote_config
        default = Path("downvote.toml")
        return default if default.exists() else None
