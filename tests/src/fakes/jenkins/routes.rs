//! Request handling of the fake Jenkins: authentication, the CSRF crumb
//! check, and dispatch on Jenkins' nested `job/{a}/job/{b}/...` URLs.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use super::Shared;
use super::model::{CancelOutcome, ScheduleError, Session, job_url};
use super::tree::apply_tree;

/// The name of the session cookie (Jenkins appends an instance hash).
const SESSION_COOKIE: &str = "JSESSIONID.5e1c2d3f";
/// The header the crumb travels in.
const CRUMB_FIELD: &str = "Jenkins-Crumb";

pub(super) fn router(shared: Shared) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// Who made the request.
enum Auth {
    Anonymous,
    Token(String),
    Password(String),
}

impl Auth {
    fn user(&self) -> Option<&str> {
        match self {
            Auth::Anonymous => None,
            Auth::Token(u) | Auth::Password(u) => Some(u),
        }
    }
}

fn html(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<html><head><title>Error {code}</title></head><body><h2>HTTP ERROR {code} {text}</h2></body></html>",
        code = status.as_u16()
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
        body,
    )
        .into_response()
}

fn json_response(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        value.to_string(),
    )
        .into_response()
}

fn redirect(status: StatusCode, location: &str) -> Response {
    (status, [(header::LOCATION, location.to_string())]).into_response()
}

/// nginx's answer when the upstream did not answer in time.
fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/html")],
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
         <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
         </body>\r\n</html>\r\n",
    )
        .into_response()
}

fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, "Not Found")
}

fn post_only() -> Response {
    html(StatusCode::METHOD_NOT_ALLOWED, "This URL requires POST")
}

async fn dispatch(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return html(StatusCode::BAD_REQUEST, "Unreadable body");
    };
    let auth = match authenticate(&shared, &parts.headers) {
        Ok(auth) => auth,
        Err(user) => return unauthorized(&user),
    };
    let method = parts.method.clone();
    if method == Method::POST {
        if !matches!(auth, Auth::Token(_)) && !crumb_ok(&shared, &auth, &parts.headers) {
            return html(
                StatusCode::FORBIDDEN,
                "No valid crumb was included in the request",
            );
        }
        if matches!(auth, Auth::Anonymous) {
            return html(
                StatusCode::FORBIDDEN,
                "anonymous is missing the Overall/Read permission",
            );
        }
    }
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let tree = query
        .iter()
        .find(|(k, _)| k == "tree")
        .map(|(_, v)| v.as_str());
    let get = method == Method::GET;
    match segments.as_slice() {
        ["api", "json"] if get => {
            let root = shared.lock().root_json(&shared.root);
            json_response(apply_tree(root, tree))
        }
        ["crumbIssuer", "api", "json"] if get => issue_crumb(&shared, &auth, &parts.headers),
        ["queue", "item", id, "api", "json"] if get => {
            let Ok(id) = id.parse::<u64>() else {
                return not_found();
            };
            let item = shared.lock().queue_item_json(id, &shared.root);
            item.map_or_else(not_found, |v| json_response(apply_tree(v, tree)))
        }
        ["queue", "api", "json"] if get => {
            let queue = shared.lock().queue_json(&shared.root);
            json_response(apply_tree(queue, tree))
        }
        ["queue", "cancelItem"] => {
            if method != Method::POST {
                return post_only();
            }
            cancel(&shared, &query)
        }
        ["job", ..] => job_route(&shared, &method, &segments, &query, &body, tree).await,
        [] if get => html(StatusCode::OK, "Dashboard [Jenkins]"),
        _ => not_found(),
    }
}

/// `job/a/job/b/<rest>`: splits the job's full name from the rest.
async fn job_route(
    shared: &Shared,
    method: &Method,
    segments: &[&str],
    query: &[(String, String)],
    body: &Bytes,
    tree: Option<&str>,
) -> Response {
    let mut names = Vec::new();
    let mut rest = segments;
    while let ["job", name, tail @ ..] = rest {
        names.push(*name);
        rest = tail;
    }
    let job = names.join("/");
    let get = *method == Method::GET;
    if !shared.lock().jobs.contains_key(&job) {
        return not_found();
    }
    match rest {
        [] if get => html(StatusCode::OK, &format!("{job} [Jenkins]")),
        ["api", "json"] if get => {
            let value = shared.lock().job_json(&job, &shared.root);
            value.map_or_else(not_found, |v| json_response(apply_tree(v, tree)))
        }
        [action @ ("buildWithParameters" | "build")] => {
            if !matches!(*method, Method::POST) {
                return post_only();
            }
            let mut supplied = query.to_vec();
            supplied.extend(url::form_urlencoded::parse(body).into_owned());
            let with_params = *action == "buildWithParameters";
            let late = shared.lock().late_triggers.pop_front();
            match late {
                None => trigger(shared, &job, &supplied, with_params),
                Some(gate) => {
                    // The request reaches Jenkins only once the test opens
                    // the gate, whether or not the caller still waits.
                    let shared = shared.clone();
                    let landing = tokio::spawn(async move {
                        gate.notified().await;
                        trigger(&shared, &job, &supplied, with_params)
                    });
                    landing.await.unwrap_or_else(|_| bad_gateway())
                }
            }
        }
        [number, tail @ ..] => {
            let Ok(number) = number.parse::<u64>() else {
                return not_found();
            };
            build_route(shared, method, &job, number, tail, tree)
        }
        _ => not_found(),
    }
}

fn build_route(
    shared: &Shared,
    method: &Method,
    job: &str,
    number: u64,
    rest: &[&str],
    tree: Option<&str>,
) -> Response {
    let Some(build) = shared.lock().build_json(job, number, &shared.root) else {
        return not_found();
    };
    match rest {
        ["api", "json"] if *method == Method::GET => json_response(apply_tree(build, tree)),
        [] if *method == Method::GET => html(StatusCode::OK, &format!("{job} #{number}")),
        ["stop"] if *method == Method::POST => {
            // Aborting is asynchronous in Jenkins: the answer comes at once,
            // the build ends (and notifies) shortly after.
            let shared = shared.clone();
            let job_name = job.to_string();
            tokio::spawn(async move {
                shared.finish(&job_name, number, "ABORTED").await;
            });
            redirect(StatusCode::FOUND, build["url"].as_str().unwrap_or("/"))
        }
        ["stop"] => post_only(),
        _ => not_found(),
    }
}

fn trigger(
    shared: &Shared,
    job: &str,
    supplied: &[(String, String)],
    with_params: bool,
) -> Response {
    let (scheduled, lose_answer) = {
        let mut model = shared.lock();
        model.triggers += 1;
        let scheduled = model.schedule(job, supplied, with_params);
        let lose_answer = model.lose_answers > 0;
        if lose_answer {
            model.lose_answers -= 1;
        }
        (scheduled, lose_answer)
    };
    if lose_answer {
        // What a reverse proxy answers when Jenkins took too long: the
        // build is queued (or refused) all the same, the caller cannot know.
        if let Ok((id, true)) = scheduled {
            shared.auto_run(id);
        }
        return bad_gateway();
    }
    match scheduled {
        Ok((id, created)) => {
            if created {
                shared.auto_run(id);
            }
            redirect(
                StatusCode::CREATED,
                &format!("{}queue/item/{id}/", shared.root),
            )
        }
        Err(ScheduleError::UnknownJob) => not_found(),
        Err(ScheduleError::Disabled) => redirect(
            StatusCode::FOUND,
            &format!("{}{}", shared.root, job_url(job)),
        ),
        Err(ScheduleError::NotParameterized) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "java.lang.IllegalStateException: This build is not parameterized!",
        ),
    }
}

fn cancel(shared: &Shared, query: &[(String, String)]) -> Response {
    let raw = query
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let Ok(id) = raw.parse::<u64>() else {
        return html(StatusCode::BAD_REQUEST, "Invalid id");
    };
    match shared.lock().cancel(id) {
        CancelOutcome::Cancelled => StatusCode::NO_CONTENT.into_response(),
        CancelOutcome::NotFound => html(
            StatusCode::NOT_FOUND,
            &format!("Provided id ({id}) not found"),
        ),
        CancelOutcome::NotCancellable => {
            html(StatusCode::UNPROCESSABLE_ENTITY, "Item was not cancellable")
        }
    }
}

/// Basic credentials: a token, a password, or (`Err`, with the user name
/// Jenkins puts in its 401 text) wrong ones. No header: anonymous.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Auth, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Auth::Anonymous);
    };
    let decoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(String::new());
    };
    let model = shared.lock();
    let Some(cred) = model.users.get(user) else {
        return Err(user.to_string());
    };
    if cred.tokens.iter().any(|t| t == secret) {
        Ok(Auth::Token(user.to_string()))
    } else if cred.passwords.iter().any(|p| p == secret) {
        Ok(Auth::Password(user.to_string()))
    } else {
        Err(user.to_string())
    }
}

fn unauthorized(user: &str) -> Response {
    let mut response = html(
        StatusCode::UNAUTHORIZED,
        &format!("Invalid password/token for user: {user}"),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"Jenkins\""),
    );
    response
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The crumb is valid when it is the one issued in the request's session,
/// to the same user.
fn crumb_ok(shared: &Shared, auth: &Auth, headers: &HeaderMap) -> bool {
    let Some(crumb) = headers.get(CRUMB_FIELD).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(session) = session_id(headers) else {
        return false;
    };
    let model = shared.lock();
    model
        .sessions
        .get(&session)
        .is_some_and(|s| s.crumb == crumb && s.user.as_deref() == auth.user())
}

/// `crumbIssuer/api/json`: reuses the request's session if it has one,
/// otherwise opens a new one and sets its cookie.
fn issue_crumb(shared: &Shared, auth: &Auth, headers: &HeaderMap) -> Response {
    let mut model = shared.lock();
    let user = auth.user().map(str::to_string);
    let existing =
        session_id(headers).filter(|id| model.sessions.get(id).is_some_and(|s| s.user == user));
    let (id, fresh) = match existing {
        Some(id) => (id, false),
        None => (random_hex(16), true),
    };
    let crumb = model
        .sessions
        .entry(id.clone())
        .or_insert_with(|| Session {
            user,
            crumb: random_hex(32),
        })
        .crumb
        .clone();
    drop(model);
    let mut response = json_response(json!({
        "_class": "hudson.security.csrf.DefaultCrumbIssuer",
        "crumb": crumb,
        "crumbRequestField": CRUMB_FIELD,
    }));
    if fresh {
        let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly");
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}
