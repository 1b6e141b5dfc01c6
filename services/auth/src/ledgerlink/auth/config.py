"""Settings of the auth service (env prefix ``LEDGERLINK_AUTH_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from ledgerlink.shared.config import DatabaseSettings, HttpSettings, KafkaSettings, ServiceConfig

#: Development default of ``session_secret``; production refuses it.
DEVELOPMENT_SESSION_SECRET = "development-only-session-secret-not-for-production"  # noqa: S105
#: The sandbox IdPs' client secret (``SandboxConfig.oidc_client_secret``); production refuses it.
SANDBOX_CLIENT_SECRET = "sandbox-oidc-client-secret"  # noqa: S105
#: Where ``ledgerlink dev up`` serves the sandbox (``cli/.../stack.py``, port 8084).
_SANDBOX = "http://127.0.0.1:8084"

ProviderName = Literal["google", "microsoft"]


class OidcProviderSettings(BaseModel):
    """One OpenID Connect provider people sign in with."""

    enabled: bool = Field(default=True, description="Offer this provider on the sign-in page.")
    client_id: str = Field(
        default="ledgerlink-auth-dev", description="OAuth client id registered at the provider."
    )
    client_secret: SecretStr = Field(
        default=SecretStr(SANDBOX_CLIENT_SECRET), description="That client's secret."
    )
    discovery_url: str = Field(
        description="The provider's OpenID Connect discovery document "
        "(…/.well-known/openid-configuration)."
    )


def _google() -> OidcProviderSettings:
    # Google's own: https://accounts.google.com/.well-known/openid-configuration
    return OidcProviderSettings(discovery_url=f"{_SANDBOX}/google/.well-known/openid-configuration")


def _microsoft() -> OidcProviderSettings:
    # Microsoft's own, work and school accounts of any tenant:
    # https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration
    return OidcProviderSettings(
        discovery_url=f"{_SANDBOX}/microsoft/organizations/v2.0/.well-known/openid-configuration"
    )


class SigninSettings(BaseModel):
    """People's sign-in through OpenID Connect."""

    google: OidcProviderSettings = Field(default_factory=_google)
    microsoft: OidcProviderSettings = Field(default_factory=_microsoft)
    public_url: str | None = Field(
        default=None,
        description="Auth's address as browsers see it (callback URLs are built on it); "
        "default: the address of the request.",
    )
    attempt_seconds: int = Field(
        default=600, ge=30, le=3600, description="How long a started sign-in may take."
    )
    clock_leeway_seconds: int = Field(
        default=60, ge=0, le=300, description="Clock skew allowed when checking ID token times."
    )
    http_timeout_seconds: float = Field(
        default=10, gt=0, description="Timeout of calls to the providers."
    )

    def provider(self, name: str) -> OidcProviderSettings | None:
        """The settings of an enabled provider called ``name``, if any."""
        if name not in ("google", "microsoft"):
            return None
        settings: OidcProviderSettings = getattr(self, name)
        return settings if settings.enabled else None

    def enabled(self) -> list[ProviderName]:
        """Enabled providers, in the order the sign-in page lists them."""
        names: list[ProviderName] = ["google", "microsoft"]
        return [name for name in names if getattr(self, name).enabled]


class SessionSettings(BaseModel):
    """Browser sessions: server-side records behind a signed, opaque cookie."""

    cookie_name: str = Field(default="ledgerlink_session", description="The session cookie.")
    idle_seconds: int = Field(
        default=30 * 60, ge=60, description="A session unused this long has ended."
    )
    absolute_seconds: int = Field(
        default=12 * 3600, ge=60, description="A session ends this long after sign-in."
    )
    touch_interval_seconds: int = Field(
        default=60,
        ge=0,
        description="Last-seen is written at most this often (a write per request is waste).",
    )


#: Development defaults; production refuses to start with them.
DEVELOPMENT_VAULT_KEY = SecretStr("development-only-vault-key-never-use-in-production")
DEVELOPMENT_SERVICE_TOKEN = SecretStr("development-only-service-token")
MIN_KEY_LENGTH = 32


class VaultSettings(BaseModel):
    """Versioned keys of the credential vault (``VAULT__KEYS`` as ``{"1": "...", "2": ...}``)."""

    keys: dict[int, SecretStr] = Field(
        default_factory=lambda: {1: DEVELOPMENT_VAULT_KEY},
        description="Key material by version (each at least 32 characters). Keep a retired "
        "version here until `ledgerlink-auth vault status` shows no ciphertext under it.",
    )
    active_key: int = Field(default=1, description="The version that encrypts from now on.")
    rotate_batch_size: int = Field(
        default=200, ge=1, description="Secrets re-encrypted per transaction by `vault rotate`."
    )

    @model_validator(mode="after")
    def _check_keys(self) -> VaultSettings:
        if self.active_key not in self.keys:
            raise ValueError(f"vault.active_key {self.active_key} is not one of vault.keys")
        for version, key in self.keys.items():
            if len(key.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(f"vault key {version} is shorter than {MIN_KEY_LENGTH} characters")
        return self


class OAuthProviderSettings(BaseModel):
    """Our registered OAuth client at one vendor (used to refresh and revoke)."""

    client_id: str = Field(min_length=1, description="Our client id at the vendor.")
    client_secret: SecretStr | None = Field(default=None, description="Our client secret.")
    token_url: str = Field(description="The vendor's token endpoint.")
    revocation_url: str | None = Field(
        default=None, description="RFC 7009 revocation endpoint, where the vendor has one."
    )
    token_endpoint_auth_method: Literal["client_secret_post", "client_secret_basic", "none"] = (
        Field(default="client_secret_post", description="How the client authenticates.")
    )


#: The sandbox's public demo values of the connection pages' clients; production refuses them.
SANDBOX_VISMA_CLIENT_SECRET = "sandbox-secret"  # noqa: S105
SANDBOX_24SO_APPLICATION_ID = "24so-sandbox-application"


class VismaConnectFlowSettings(BaseModel):
    """Our interactive Visma Connect client, for the pages that connect Visma.net.

    Visma Connect is an OpenID Connect provider (``connect.visma.com``): authorization code
    with PKCE S256 at ``/connect/authorize`` and ``/connect/token``; the ERP API's
    ``GET /resources/v1/context`` lists the companies the person's token may choose.
    """

    client_id: str = Field(
        default="isv_ledgerlink_pages", description="Our interactive client at Visma Connect."
    )
    client_secret: SecretStr = Field(
        default=SecretStr(SANDBOX_VISMA_CLIENT_SECRET), description="That client's secret."
    )
    authorize_url: str = Field(
        default=f"{_SANDBOX}/visma-connect/connect/authorize",
        description="Production: https://connect.visma.com/connect/authorize",
    )
    token_url: str = Field(
        default=f"{_SANDBOX}/visma-connect/connect/token",
        description="Production: https://connect.visma.com/connect/token",
    )
    api_base_url: str = Field(
        default=f"{_SANDBOX}/vismanet",
        description="The ERP API (production: https://integration.visma.net/API).",
    )
    scope: str = Field(
        default="openid profile email tenants offline_access "
        "vismanet_erp_interactive_api:read vismanet_erp_interactive_api:create "
        "vismanet_erp_interactive_api:update",
        description="What the pages ask for (read for imports; create/update for journals).",
    )


class NmbrsFlowSettings(BaseModel):
    """Where the pages check an Nmbrs API user's token (SOAP v3)."""

    soap_base_url: str = Field(
        default=f"{_SANDBOX}/nmbrs",
        description="SOAP host, /soap/v3/CompanyService.asmx appended (production: "
        "https://api.nmbrs.nl)",
    )


class ConnectFlowSettings(BaseModel):
    """The in-product connection pages (Visma.net, Nmbrs' Visma.net account, 24SevenOffice)."""

    visma_connect: VismaConnectFlowSettings = Field(default_factory=VismaConnectFlowSettings)
    nmbrs: NmbrsFlowSettings = Field(default_factory=NmbrsFlowSettings)
    flow_seconds: int = Field(
        default=1800, ge=60, description="How long a started connection flow may take."
    )
    login_backoff_seconds: int = Field(
        default=60,
        ge=1,
        description="After a refused vendor login, the next attempt waits this long (doubled "
        "per further refusal, at most 15 minutes): vendors throttle repeated logins.",
    )


#: The sandbox's Netvisor demo partner (``ledgerlink.sandbox.vendors.netvisor.DEMO_CREDENTIALS``).
SANDBOX_NETVISOR_PARTNER_KEY = "demo-partner-key"


class NetvisorPartnerSettings(BaseModel):
    """Ledgerlink's own Netvisor partner identity: the customer brings only its customer ID
    and key; every request is also signed with ours (Netvisor's authentication headers).

    Held here, beside the customers' keys in the vault: the token service hands out a complete
    signing identity (no other service keeps a Netvisor secret in its settings, one place to
    rotate the partner key) and the activation pages check a customer's identifiers with it.
    The defaults are the sandbox's demo partner; production refuses its key. ``None`` means
    not configured: the token service then answers 503 ``partner_unconfigured``.
    """

    partner_id: str | None = Field(
        default="LEDGERLINK_DEMO", description="Our PartnerId at Netvisor (X-Netvisor-...)."
    )
    partner_key: SecretStr | None = Field(
        default=SecretStr(SANDBOX_NETVISOR_PARTNER_KEY),
        description="Our partner MAC key (never sent).",
    )
    base_url: str = Field(
        default=f"{_SANDBOX}/netvisor",
        description="Netvisor's API root (production: https://integration.netvisor.fi).",
    )
    sender: str = Field(
        default="Ledgerlink", description="X-Netvisor-Authentication-Sender of our requests."
    )


class TwentyFourLoginSettings(BaseModel):
    """How the token service logs in at 24SevenOffice for a connection's integration user."""

    application_id: SecretStr | None = Field(
        default=SecretStr(SANDBOX_24SO_APPLICATION_ID),
        description="Our SOAP ApplicationId (every Login names it; the token service's and "
        "the API keys page's). Default: the sandbox's; production refuses it.",
    )
    soap_base_url: str = Field(
        default=f"{_SANDBOX}/24so/soap",
        description="Base URL of 24SevenOffice's SOAP services (authenticate.asmx lives there; "
        "production: https://api.24sevenoffice.com).",
    )
    # UNCONFIRMED: 24SevenOffice publishes no session lifetime. Its SOAP services are
    # ASP.NET .asmx with an ASP.NET_SessionId cookie, whose framework default is a 20-minute
    # sliding timeout; a session is used well inside it, and a session the vendor refuses
    # earlier is replaced on the caller's report anyway.
    session_seconds: float = Field(
        default=1200,
        gt=0,
        description="How long a session is handed out after its login (then a new login).",
    )


class ProcountorClientSettings(BaseModel):
    """Our Procountor API client for the activation flow (authorization code grant)."""

    client_id: str = Field(default="ledgerlink-procountor-dev", description="Our client id.")
    client_secret: SecretStr = Field(
        default=SecretStr("ledgerlink-procountor-dev-secret"), description="Our client secret."
    )
    base_url: str = Field(
        default=f"{_SANDBOX}/procountor",
        description="Procountor's host (production https://api.procountor.com; the login page "
        "is <it>/login, the API <it>/api).",
    )
    redirect_uri: str | None = Field(
        default=None,
        description="The one redirect URI registered for our client (no query string); "
        "default: <public_url>/activate/procountor/callback.",
    )


class PagesSettings(BaseModel):
    """The activation pages (issue 13): links, waiting, where a finished flow goes."""

    public_url: str | None = Field(
        default=None,
        description="Auth's address as browsers see it, for links in events (activation "
        "links); default: signin.public_url, else http://127.0.0.1:<http.port>.",
    )
    link_ttl_hours: float = Field(
        default=72, gt=0, description="An activation link expires this long after it is issued."
    )
    wait_seconds: float = Field(
        default=120,
        gt=0,
        description="How long the page waits for the activation event before it says it "
        "has not come.",
    )
    poll_seconds: float = Field(
        default=2, gt=0, description="How often the waiting page's script asks again."
    )
    step_up_seconds: int = Field(
        default=600,
        ge=30,
        description="A step that changes who can read the books (Connect, Confirm "
        "connection) needs a sign-in at most this old.",
    )
    environment_url_template: str = Field(
        default="/environments/{subdomain}",
        description="An environment's own address; {subdomain} is filled in. Success pages "
        "redirect only here (production: https://{subdomain}.<product domain>).",
    )
    product_name: str = Field(
        default="Ledgerlink Planning", description="The product named on buttons (To <it>)."
    )
    financial_model_products: list[str] = Field(
        default_factory=lambda: ["planning"],
        description="Products that need the company's financial model active first (seed 000).",
    )
    procountor: ProcountorClientSettings = Field(default_factory=ProcountorClientSettings)
    clock_control: bool = Field(
        default=False,
        description="Development and tests only: auth's clock can be moved forward with "
        "POST /internal/v1/clock/advance (service token). Refused in production.",
    )


class Config(ServiceConfig):
    """Auth: activations, environments and connections; people's sign-in and sessions;
    the credential vault and the token service."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGERLINK_AUTH_",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,
    )

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings(client_id="ledgerlink-auth"))
    database: DatabaseSettings = Field(
        default_factory=lambda: DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./var/auth.db"))
    )
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8081))
    consumer_group: str = Field(
        default="ledgerlink-auth", description="Kafka consumer group of the activation consumer."
    )
    # Auth is the one service that signs anything (session cookies, the sign-in attempt
    # cookie), so the key lives here and nowhere else (see shared/config.py).
    session_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SESSION_SECRET),
        description="Key that signs session cookies and seals sign-in attempts (32+ chars).",
    )
    signin: SigninSettings = Field(default_factory=SigninSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    pages: PagesSettings = Field(default_factory=PagesSettings)

    vault: VaultSettings = Field(default_factory=VaultSettings)
    service_tokens: dict[str, SecretStr] = Field(
        default_factory=lambda: {"development": DEVELOPMENT_SERVICE_TOKEN},
        description="Bearer tokens of the services allowed on /internal (name -> token), "
        'e.g. {"importer": "...", "journal-exporter": "..."}.',
    )
    terms_publishers: list[str] = Field(
        default_factory=lambda: ["operator"],
        description="Names (keys of SERVICE_TOKENS) allowed to publish terms and privacy "
        "versions through POST /internal/v1/terms: platform operators, not the services.",
    )
    oauth_providers: dict[str, OAuthProviderSettings] = Field(
        default_factory=dict,
        description="Our OAuth client per provider (visma_net, procountor, nmbrs).",
    )
    netvisor: NetvisorPartnerSettings = Field(default_factory=NetvisorPartnerSettings)
    twentyfour: TwentyFourLoginSettings = Field(default_factory=TwentyFourLoginSettings)
    refresh_leeway_seconds: float = Field(
        default=120, ge=0, description="Refresh an access token this long before it expires."
    )
    credential_cache_seconds: float = Field(
        default=5,
        ge=0,
        description="Longest time a replica answers from memory without re-reading the "
        "connection (a revocation on another replica is seen within it).",
    )
    vendor_timeout_seconds: float = Field(
        default=15, gt=0, description="Timeout of token and revocation calls to a vendor."
    )
    activation_ttl_hours: float = Field(
        default=72, gt=0, description="A pending activation not authorised by then expires."
    )
    expiry_check_seconds: float = Field(
        default=300, gt=0, description="How often pending activations are checked for expiry."
    )
    connect: ConnectFlowSettings = Field(default_factory=ConnectFlowSettings)

    @property
    def public_base_url(self) -> str:
        """Auth's address as browsers see it (activation links, Procountor's redirect URI)."""
        url = self.pages.public_url or self.signin.public_url
        return (url or f"http://127.0.0.1:{self.http.port}").rstrip("/")

    @property
    def procountor_redirect_uri(self) -> str:
        """The redirect URI registered for our Procountor client."""
        return (
            self.pages.procountor.redirect_uri
            or f"{self.public_base_url}/activate/procountor/callback"
        )

    @property
    def cookie_secure(self) -> bool:
        """Cookies carry ``Secure`` everywhere but development (plain http on loopback)."""
        return self.environment != "development"

    @model_validator(mode="after")
    def _visma_grants_refresh_with_the_pages_client(self) -> Config:
        # A Visma Connect grant refreshes only with the client it was issued to: the
        # token service uses the pages' client unless another is configured on purpose.
        if "visma_net" not in self.oauth_providers:
            visma = self.connect.visma_connect
            self.oauth_providers["visma_net"] = OAuthProviderSettings(
                client_id=visma.client_id,
                client_secret=visma.client_secret,
                token_url=visma.token_url,
                revocation_url=visma.token_url.rsplit("/", 1)[0] + "/revocation",
            )
        return self

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Config:
        secret = self.session_secret.get_secret_value()
        if len(secret) < 32:
            raise ValueError("session_secret must be at least 32 characters")
        if self.environment != "production":
            return self
        if secret == DEVELOPMENT_SESSION_SECRET:
            raise ValueError("production needs its own session_secret, not the development one")
        for name in self.signin.enabled():
            provider: OidcProviderSettings = getattr(self.signin, name)
            if provider.client_secret.get_secret_value() == SANDBOX_CLIENT_SECRET:
                raise ValueError(f"production needs {name}'s real client secret, not the sandbox's")
            if not provider.discovery_url.startswith("https://"):
                raise ValueError(f"production needs an https discovery URL for {name}")
        if self.sessions.absolute_seconds < self.sessions.idle_seconds:
            raise ValueError("sessions.absolute_seconds must not be shorter than idle_seconds")
        development = DEVELOPMENT_VAULT_KEY.get_secret_value()
        if any(key.get_secret_value() == development for key in self.vault.keys.values()):
            raise ValueError("production needs its own vault keys, not the development default")
        if not self.service_tokens or any(
            token.get_secret_value() == DEVELOPMENT_SERVICE_TOKEN.get_secret_value()
            or len(token.get_secret_value()) < MIN_KEY_LENGTH
            for token in self.service_tokens.values()
        ):
            raise ValueError(
                "production needs service tokens of at least 32 characters, not the default"
            )
        if self.pages.clock_control:
            raise ValueError("pages.clock_control is for development and tests, not production")
        partner_key = self.netvisor.partner_key
        demo_partner = SANDBOX_NETVISOR_PARTNER_KEY
        if partner_key is not None and partner_key.get_secret_value() == demo_partner:
            raise ValueError("production needs Ledgerlink's real Netvisor partner key")
        connect = self.connect
        if connect.visma_connect.client_secret.get_secret_value() == SANDBOX_VISMA_CLIENT_SECRET:
            raise ValueError("production needs our real Visma Connect client secret")
        application = self.twentyfour.application_id
        if (
            application is not None
            and application.get_secret_value() == SANDBOX_24SO_APPLICATION_ID
        ):
            raise ValueError("production needs our real 24SevenOffice ApplicationId")
        for setting, url in (
            ("connect.visma_connect.authorize_url", connect.visma_connect.authorize_url),
            ("connect.visma_connect.token_url", connect.visma_connect.token_url),
            ("connect.visma_connect.api_base_url", connect.visma_connect.api_base_url),
            ("twentyfour.soap_base_url", self.twentyfour.soap_base_url),
            ("connect.nmbrs.soap_base_url", connect.nmbrs.soap_base_url),
        ):
            if not url.startswith("https://"):
                raise ValueError(f"production needs an https {setting}")
        # Activation links in mails, sign-in callbacks and Procountor's redirect URI are built
        # on it: unset, they would name http://127.0.0.1 (behind an ingress, the request's
        # own address is the pod's, over plain http).
        if not (self.pages.public_url or self.signin.public_url or "").startswith("https://"):
            raise ValueError(
                "production needs signin.public_url: auth's https address as browsers see it "
                "(the ingress host, e.g. https://ledgerlink.example.com)"
            )
        return self
