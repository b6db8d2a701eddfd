//! Accounts and sessions: sign-up, sign-in and sign-out over HTTP, and the [`Session`]
//! extractor every authenticated request and WebSocket upgrade goes through.
//!
//! - Passwords are hashed with Argon2id (the `argon2` crate's defaults: 19 MiB, t=2, p=1) on
//!   the blocking pool, a bounded number at once (`password_hashes_at_once`); unknown
//!   usernames cost the same as wrong passwords.
//! - Sign-ins are throttled per account and address ([`crate::throttle`]); sign-ups per
//!   address (`sign_ups_per_hour`), counted before the password is hashed.
//! - A session is a row in the `session` table plus an HS256 JWT naming it (`sid`) and the
//!   user (`sub`), with an expiry. The JWT travels in an HttpOnly, SameSite=Lax cookie
//!   (browsers) or an `Authorization: Bearer` header (other clients); never in a URL.
//!   Signing out deletes the row, so the token is dead even before it expires.
//! - Sign-up is open, by invitation only, or closed (`sign_up`); the first account on a new
//!   server is its administrator. A disabled account cannot sign in (its sessions were
//!   ended when it was disabled).
//! - Only HS256 is accepted: `alg: none`, other algorithms, other keys, tampered and expired
//!   tokens are all refused.

use app::domain::{DisplayName, Password, Username};
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    path::Path,
    sync::Arc,
    time::Duration,
};
use tokio::sync::{broadcast, Semaphore};
use tracing::{info, warn};

use crate::{
    store::{StoreError, SurrealChatStore},
    throttle::SignInThrottle,
};

/// Name of the session cookie.
pub const COOKIE: &str = "chat_session";

/// What the auth endpoints and the [`Session`] extractor use; cheap to clone.
#[derive(Clone)]
pub struct AuthState {
    pub store: SurrealChatStore,
    pub keys: Keys,
    pub throttle: SignInThrottle,
    pub sign_ups: Arc<SignUpLimit>,
    /// Places for password hashes being computed (each takes 19 MiB while it runs).
    pub hashing: Arc<Semaphore>,
    /// Session ids as they sign out; their sockets close.
    pub sessions_ended: broadcast::Sender<String>,
    /// The origin browsers load the app from (`None`: the request's own Host).
    pub public_origin: Option<String>,
    /// Who may create an account.
    pub sign_up: crate::settings::SignUpMode,
}

/// How many accounts one address may create: `per_hour`, all of them at once if it likes.
pub struct SignUpLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl SignUpLimit {
    pub fn new(per_hour: u32) -> Self {
        let n = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
        SignUpLimit {
            limiter: RateLimiter::keyed(Quota::per_hour(n)),
        }
    }

    /// Takes one sign-up from `address`'s budget, or says how long until there is one.
    pub fn take(&self, address: IpAddr) -> Result<(), Duration> {
        self.limiter.check_key(&address).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Forgets addresses whose budget is full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Sign-up, sign-in and sign-out only from this site: a page on another site must not sign
/// people out, or into an account of its choosing. A browser says where a request comes
/// from (`Origin`, `Sec-Fetch-Site`); other clients send neither and are let through.
pub async fn same_site_only(
    State(auth): State<AuthState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    if crate::security::cross_site(headers)
        || !crate::security::origin_allowed(headers, auth.public_origin.as_deref())
    {
        warn!("cross-site auth request refused");
        let body = serde_json::json!({
            "error": { "code": "forbidden_origin", "message": "cross-site request refused" }
        });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    next.run(request).await
}

/// The signing key and session lifetime; cheap to clone.
#[derive(Clone)]
pub struct Keys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    pub ttl: Duration,
    /// Adds `Secure` to the cookie (serve over HTTPS).
    pub secure_cookie: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    iat: u64,
    exp: u64,
}

/// Who a request or socket belongs to: extracted from the cookie or the Bearer token, and
/// only for a live session (a valid token whose session row still exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub username: Username,
    pub session_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(#[from] app::domain::Invalid),
    #[error("this username is taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("not signed in")]
    Unauthenticated,
    #[error("too many failed sign-ins; try again in {} minutes", .0.as_secs().div_ceil(60).max(1))]
    TooManyAttempts(Duration),
    #[error("too many accounts created from this address; try again in {} minutes", .0.as_secs().div_ceil(60).max(1))]
    TooManySignUps(Duration),
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("sign-up is closed on this server")]
    SignUpClosed,
    #[error("an invitation is needed to sign up, and this one is not valid (expired, revoked or used up)")]
    InviteInvalid,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("no such session")]
    NoSuchSession,
    #[error("internal error")]
    Store(#[source] StoreError),
    #[error("internal error")]
    Token(#[source] jsonwebtoken::errors::Error),
    #[error("internal error")]
    Hashing(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => AuthError::UsernameTaken,
            other => AuthError::Store(other),
        }
    }
}

impl AuthError {
    fn code(&self) -> (&'static str, StatusCode) {
        match self {
            AuthError::Invalid(_) => ("invalid_input", StatusCode::BAD_REQUEST),
            AuthError::UsernameTaken => ("username_taken", StatusCode::CONFLICT),
            AuthError::WrongCredentials => ("wrong_credentials", StatusCode::UNAUTHORIZED),
            AuthError::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
            AuthError::TooManyAttempts(_) | AuthError::TooManySignUps(_) => {
                ("too_many_attempts", StatusCode::TOO_MANY_REQUESTS)
            }
            AuthError::AccountDisabled => ("account_disabled", StatusCode::FORBIDDEN),
            AuthError::SignUpClosed => ("sign_up_closed", StatusCode::FORBIDDEN),
            AuthError::InviteInvalid => ("invite_invalid", StatusCode::FORBIDDEN),
            AuthError::WrongPassword => ("wrong_password", StatusCode::FORBIDDEN),
            AuthError::NoSuchSession => ("not_found", StatusCode::NOT_FOUND),
            AuthError::Store(_) | AuthError::Token(_) | AuthError::Hashing(_) => {
                ("internal", StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// `{"error": {"code": ..., "message": ...}}` with the matching status; internal causes
/// are logged, never sent.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (code, status) = self.code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let cause = std::error::Error::source(&self).map(ToString::to_string);
            warn!(cause, "auth request failed");
        }
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        let mut res = (status, Json(body)).into_response();
        if let AuthError::TooManyAttempts(wait) | AuthError::TooManySignUps(wait) = self {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
        }
        res
    }
}

impl Keys {
    pub fn from_secret(secret: &[u8], ttl: Duration, secure_cookie: bool) -> Self {
        Keys {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            ttl,
            secure_cookie,
        }
    }

    fn issue(&self, username: &str, session_id: &str) -> Result<String, AuthError> {
        let now = now_secs();
        let claims = Claims {
            sub: username.to_owned(),
            sid: session_id.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AuthError::Token)
    }

    /// Checks signature, algorithm and expiry; says nothing yet about revocation.
    fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|_| AuthError::Unauthenticated)
    }

    /// The session cookie carrying `token`.
    fn cookie(&self, token: String) -> Cookie<'static> {
        Cookie::build((COOKIE, token))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX),
            ))
            .secure(self.secure_cookie)
            .build()
    }

    /// What removes the session cookie from a browser.
    fn removal(&self) -> Cookie<'static> {
        Cookie::build((COOKIE, ""))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .build()
    }
}

/// The signing secret: from settings if given, else generated once and kept in
/// `<data_dir>/jwt-secret` (mode 0600), or per process for in-memory storage.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: Option<&Path>,
) -> std::io::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let Some(dir) = data_dir else {
        return Ok(random_hex(32).into_bytes());
    };
    let path = dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().as_bytes().to_vec()),
        _ => {
            std::fs::create_dir_all(dir)?;
            let secret = random_hex(32);
            write_private(&path, &secret)?;
            info!(path = %path.display(), "generated a new session-signing secret");
            Ok(secret.into_bytes())
        }
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) async fn hash_password(
    hashing: &Semaphore,
    password: Password,
) -> Result<String, AuthError> {
    let _place = hashing
        .acquire()
        .await
        .map_err(|e| AuthError::Hashing(Box::new(e)))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hashing(e.to_string().into()))
    })
    .await
    .map_err(|e| AuthError::Hashing(Box::new(e)))?
}

/// A valid hash of a random password, verified against when the username is unknown so that
/// both failures take the same time.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ehZcO3Ru9Cq0Q7PrjH4ZbGrnmCq3JQJgN6sO1nCEnSE";

pub(crate) async fn verify_password(
    hashing: &Semaphore,
    password: Password,
    hash: Option<String>,
) -> bool {
    let Ok(_place) = hashing.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && ok
    })
    .await
    .unwrap_or(false)
}

/// The session token: the `Authorization: Bearer` header, else the session cookie.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    CookieJar::from_headers(headers)
        .get(COOKIE)
        .map(|c| c.value().to_owned())
}

impl AuthState {
    /// The live session a request carries: a valid token whose session row still exists.
    pub async fn session(&self, headers: &HeaderMap) -> Result<Session, AuthError> {
        let token = token_from_headers(headers).ok_or(AuthError::Unauthenticated)?;
        let claims = self.keys.verify(&token)?;
        let username = Username::parse(&claims.sub).map_err(|_| AuthError::Unauthenticated)?;
        let owner = self
            .store
            .session_owner(&claims.sid, now_secs() as i64)
            .await?;
        match owner {
            Some(owner) if owner == username.as_str() => Ok(Session {
                username,
                session_id: claims.sid,
            }),
            _ => Err(AuthError::Unauthenticated),
        }
    }

    /// Whether a session still exists (it has not signed out or expired); `true` when the
    /// database cannot say (a socket is not closed for the database's failure).
    pub async fn session_alive(&self, session_id: &str) -> bool {
        self.store.session_exists(session_id).await.unwrap_or(true)
    }

    async fn signed_in(
        &self,
        jar: CookieJar,
        device: Device,
        user: Me,
        status: StatusCode,
    ) -> Result<Response, AuthError> {
        let sid = random_hex(16);
        let now = now_secs() as i64;
        self.store
            .create_session(
                &sid,
                &user.username,
                now,
                now + self.keys.ttl.as_secs() as i64,
                device.agent.as_deref(),
                Some(&device.address.to_string()),
            )
            .await?;
        let token = self.keys.issue(&user.username, &sid)?;
        Ok((status, jar.add(self.keys.cookie(token)), Json(user)).into_response())
    }

    /// Ends sessions (already deleted from the store): their sockets close.
    pub fn close_sockets(&self, sessions: impl IntoIterator<Item = String>) {
        close_sockets(&self.sessions_ended, sessions);
    }
}

/// Tells the sockets of `sessions` (already deleted from the store) to close.
pub fn close_sockets(
    ended: &broadcast::Sender<String>,
    sessions: impl IntoIterator<Item = String>,
) {
    for sid in sessions {
        // No socket listening is fine: there was nothing to close.
        let _ = ended.send(sid);
    }
}

/// Where a sign-in comes from: the browser's `User-Agent` (shortened) and the address.
pub struct Device {
    pub agent: Option<String>,
    pub address: IpAddr,
}

/// Longest `User-Agent` kept with a session.
const AGENT_CHARS: usize = 200;

impl Device {
    fn new(headers: &HeaderMap, peer: SocketAddr) -> Self {
        Device {
            agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|a| a.chars().take(AGENT_CHARS).collect()),
            address: peer.ip(),
        }
    }
}

impl<S> FromRequestParts<S> for Session
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AuthState::from_ref(state).session(&parts.headers).await
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    username: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    /// The invitation's token, where sign-up is by invitation.
    #[serde(default)]
    invite: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    username: String,
    password: String,
}

/// What the auth endpoints answer with on success.
#[derive(Debug, Serialize)]
pub struct Me {
    pub username: String,
    pub display_name: String,
    /// A server administrator.
    pub admin: bool,
}

/// `POST /api/auth/signup` `{username, password, display_name?, invite?}`: creates the
/// account and signs in (201 + cookie). Refused while sign-up is closed, and without a valid
/// invitation where it is by invitation.
pub async fn sign_up(
    State(auth): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(form): Json<SignUp>,
) -> Result<Response, AuthError> {
    use crate::settings::SignUpMode;
    if auth.sign_up == SignUpMode::Closed {
        return Err(AuthError::SignUpClosed);
    }
    let username = Username::parse(&form.username)?;
    let password = Password::parse(&form.password)?;
    let display_name = DisplayName::parse(form.display_name.as_deref().unwrap_or(&form.username))?;
    if let Err(wait) = auth.sign_ups.take(peer.ip()) {
        warn!(peer = %peer.ip(), "sign-up refused: too many from this address");
        return Err(AuthError::TooManySignUps(wait));
    }
    let hash = hash_password(&auth.hashing, password).await?;
    if auth.sign_up == SignUpMode::Invite {
        let token = form.invite.as_deref().filter(|t| valid_token(t));
        let taken = match token {
            Some(t) => auth.store.take_signup_invite(t, now_secs() as i64).await?,
            None => false,
        };
        if !taken {
            return Err(AuthError::InviteInvalid);
        }
    }
    let created = auth
        .store
        .create_user(
            &username,
            &display_name,
            &hash,
            false,
            crate::clock::now_ms(),
        )
        .await;
    // A use of the invitation taken by a sign-up that came to nothing is given back.
    if let (Err(StoreError::UsernameTaken), SignUpMode::Invite, Some(token)) =
        (&created, auth.sign_up, form.invite.as_deref())
    {
        auth.store.give_back_signup_invite(token).await?;
    }
    let admin = created?;
    info!(user = %username, admin, "account created");
    let me = Me {
        username: username.to_string(),
        display_name: display_name.as_str().to_owned(),
        admin,
    };
    auth.signed_in(jar, Device::new(&headers, peer), me, StatusCode::CREATED)
        .await
}

/// Whether `token` has the shape of an invitation's token (hex, as [`random_hex`] makes).
pub fn valid_token(token: &str) -> bool {
    (16..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `POST /api/auth/signin` `{username, password}`: 200 + cookie, or 401 `wrong_credentials`.
/// Checks the password, unless this account or address has failed too often lately (then the
/// answer is 429 without looking at the password, see [`crate::throttle`]).
pub async fn sign_in(
    State(auth): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(form): Json<SignIn>,
) -> Result<Response, AuthError> {
    let username = Username::parse(&form.username).map_err(|_| AuthError::WrongCredentials)?;
    let password = Password::parse(&form.password).map_err(|_| AuthError::WrongCredentials)?;
    // The attempt counts as a failure from here until the password proves right, so that
    // guesses sent in parallel cannot all be checked.
    let attempt = auth
        .throttle
        .begin(username.as_str(), peer.ip())
        .map_err(|wait| {
            warn!(username = username.as_str(), peer = %peer.ip(), "sign-in refused: too many failures");
            AuthError::TooManyAttempts(wait)
        })?;
    let user = auth.store.user(username.as_str()).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = verify_password(&auth.hashing, password, hash).await;
    match user {
        Some(user) if ok => {
            attempt.succeeded();
            // Said only to whoever knows the password.
            if user.disabled {
                return Err(AuthError::AccountDisabled);
            }
            let me = Me {
                username: user.username.to_string(),
                display_name: user.display_name,
                admin: user.admin,
            };
            auth.signed_in(jar, Device::new(&headers, peer), me, StatusCode::OK)
                .await
        }
        _ => Err(AuthError::WrongCredentials),
    }
}

/// `POST /api/auth/signout`: ends the session (its token stops working at once), closes
/// its live sockets and clears the cookie. 204 even when not signed in.
pub async fn sign_out(
    State(auth): State<AuthState>,
    session: Result<Session, AuthError>,
    jar: CookieJar,
) -> Result<(StatusCode, CookieJar), AuthError> {
    if let Ok(session) = session {
        auth.store.delete_session(&session.session_id).await?;
        auth.close_sockets([session.session_id.clone()]);
        info!(user = %session.username, "signed out");
    }
    Ok((StatusCode::NO_CONTENT, jar.remove(auth.keys.removal())))
}

/// `GET /api/auth/me`: the signed-in user, or 401.
pub async fn me(State(auth): State<AuthState>, session: Session) -> Result<Json<Me>, AuthError> {
    let user = auth
        .store
        .user(session.username.as_str())
        .await?
        .ok_or(AuthError::Unauthenticated)?;
    Ok(Json(Me {
        username: user.username.to_string(),
        display_name: user.display_name,
        admin: user.admin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_secret(b"test-secret", Duration::from_secs(60), false)
    }

    #[test]
    fn a_token_round_trips() {
        let k = keys();
        let token = k.issue("alice", "s1").unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("alice", "s1"));
    }

    #[test]
    fn forged_expired_and_unsigned_tokens_are_refused() {
        let k = keys();
        let other = Keys::from_secret(b"another-secret", Duration::from_secs(60), false);
        assert!(
            k.verify(&other.issue("alice", "s1").unwrap()).is_err(),
            "other key"
        );

        let token = k.issue("alice", "s1").unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replace('a', "b");
        assert!(k.verify(&parts.join(".")).is_err(), "tampered");

        let expired = Claims {
            sub: "alice".into(),
            sid: "s1".into(),
            iat: 0,
            exp: 1,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &k.encoding).unwrap();
        assert!(k.verify(&token).is_err(), "expired");

        // `alg: none`: header and claims, no signature.
        use base64_url as b64;
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"sub":"alice","sid":"s1","iat":0,"exp":{}}}"#,
                now_secs() + 60
            ))
        );
        assert!(k.verify(&none).is_err(), "alg none");
    }

    /// Unpadded URL-safe base64, enough for the test tokens above.
    fn base64_url(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn the_token_is_read_from_the_cookie_or_a_bearer_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chat_session=tok; b=2"),
        );
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer other"),
        );
        assert_eq!(token_from_headers(&h).as_deref(), Some("other"));
        assert_eq!(token_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site() {
        let c = keys().cookie("t".into()).to_string();
        assert!(c.starts_with("chat_session=t;"), "{c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Max-Age=60"));
        assert!(!c.contains("Secure"));
        let secure = Keys::from_secret(b"k", Duration::from_secs(60), true);
        assert!(secure.cookie("t".into()).to_string().contains("Secure"));
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let places = Semaphore::new(1);
        let hash = hash_password(&places, Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let verify = |password: &str, hash: Option<String>| {
            verify_password(&places, Password::parse(password).unwrap(), hash)
        };
        assert!(verify("correct horse", Some(hash.clone())).await);
        assert!(!verify("wrong horse!", Some(hash)).await);
        assert!(!verify("correct horse", None).await);
        assert_eq!(places.available_permits(), 1, "every place is given back");
    }
}
