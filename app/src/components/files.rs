//! Files in the open conversation: picking them (the attach button, a drop anywhere on
//! the page, a paste into the message box), their uploads under the composer (progress,
//! cancel, retry), how a message shows its files (thumbnails with their size reserved, file
//! cards to download), and the viewer an image opens in.
//!
//! Uploads go by `XMLHttpRequest`, the one browser API that reports upload progress; the
//! list of them is [`Uploads`], tested on the host.

use leptos::{ev, html, prelude::*};

use crate::chat::uploads::{fit, size_label, UploadProblem, UploadState, Uploads};
use crate::i18n::{t, t_string, td_string, use_i18n, Locale};
use crate::protocol::{Attachment, ConversationId, MAX_ATTACHMENTS};

/// Largest box an image is shown in inside a message, in CSS pixels.
const IMAGE_BOX: (u32, u32) = (360, 280);

/// The open conversation's picked files and the image being viewed.
#[derive(Clone, Copy)]
pub struct FilesCtx {
    pub uploads: RwSignal<Uploads>,
    /// Names its requests (browser only).
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    conversation: StoredValue<ConversationId>,
    /// A file could not be added (the message has all it may carry).
    pub full: RwSignal<bool>,
    viewer: RwSignal<Option<Attachment>>,
}

impl FilesCtx {
    /// Made by the conversation's view, for its composer, its messages and its viewer.
    pub fn provide(conversation: ConversationId) -> Self {
        let ctx = FilesCtx {
            uploads: RwSignal::new(Uploads::default()),
            conversation: StoredValue::new(conversation),
            full: RwSignal::new(false),
            viewer: RwSignal::new(None),
        };
        provide_context(ctx);
        #[cfg(feature = "hydrate")]
        on_cleanup(move || io::cancel_all(&ctx.conversation.get_value()));
        ctx
    }

    pub fn get() -> Self {
        expect_context::<FilesCtx>()
    }

    /// The files uploaded for the next message are sent: the list starts again.
    pub fn sent(&self) {
        self.uploads.update(Uploads::clear);
        self.full.set(false);
        #[cfg(feature = "hydrate")]
        io::forget_all(&self.conversation.get_value());
    }
}

/// What a failed upload says.
fn problem_text(locale: Locale, problem: &UploadProblem) -> String {
    match problem {
        UploadProblem::TooLarge => td_string!(locale, files.too_large).to_owned(),
        UploadProblem::Quota => td_string!(locale, files.quota).to_owned(),
        UploadProblem::ImageTooLarge => td_string!(locale, files.image_too_large).to_owned(),
        UploadProblem::Network => td_string!(locale, files.network).to_owned(),
        UploadProblem::Refused(_) => td_string!(locale, files.refused).to_owned(),
    }
}

/// The attach button, with the file chooser it opens.
#[component]
pub fn AttachButton() -> impl IntoView {
    let i18n = use_i18n();
    let input = NodeRef::<html::Input>::new();
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let files = FilesCtx::get();
    view! {
        <button
            type="button"
            class="ghost attach"
            aria-label=move || t_string!(i18n, files.attach)
            title=move || t_string!(i18n, files.attach)
            on:click=move |_| {
                if let Some(i) = input.get_untracked() {
                    i.click();
                }
            }
        >
            "📎"
        </button>
        <input
            type="file"
            multiple
            hidden
            node_ref=input
            on:change=move |_| {
                #[cfg(feature = "hydrate")]
                if let Some(i) = input.get_untracked() {
                    if let Some(list) = i.files() {
                        io::pick(files, list);
                    }
                    i.set_value("");
                }
            }
        />
    }
}

/// Takes the files of a paste (a screenshot, files copied in a file manager); `true` when
/// there were any (then the paste is not also text).
#[cfg(feature = "hydrate")]
pub fn paste(files: FilesCtx, ev: &ev::ClipboardEvent) -> bool {
    let Some(list) = ev.clipboard_data().and_then(|d| d.files()) else {
        return false;
    };
    if list.length() == 0 {
        return false;
    }
    io::pick(files, list);
    true
}

/// Whether what is dragged includes files (rather than text or a link).
#[cfg(feature = "hydrate")]
pub fn carries_files(ev: &ev::DragEvent) -> bool {
    ev.data_transfer().is_some_and(|d| {
        let types = d.types();
        (0..types.length()).any(|i| types.get(i).as_string().as_deref() == Some("Files"))
    })
}

/// Files dropped anywhere on the page go to the open conversation; while they are dragged
/// over it, the page says so.
#[component]
pub fn DropZone(#[prop(into)] title: Signal<String>) -> impl IntoView {
    let i18n = use_i18n();
    let dragging = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        let files = FilesCtx::get();
        let over = window_event_listener(ev::dragover, move |ev: ev::DragEvent| {
            if carries_files(&ev) {
                ev.prevent_default();
                dragging.set(true);
            }
        });
        let leave = window_event_listener(ev::dragleave, move |ev: ev::DragEvent| {
            // Leaving the window (not one element for another).
            if ev.related_target().is_none() {
                dragging.set(false);
            }
        });
        let drop = window_event_listener(ev::drop, move |ev: ev::DragEvent| {
            dragging.set(false);
            if let Some(list) = ev.data_transfer().and_then(|d| d.files()) {
                if list.length() > 0 {
                    ev.prevent_default();
                    io::pick(files, list);
                }
            }
        });
        on_cleanup(move || {
            over.remove();
            leave.remove();
            drop.remove();
        });
    }
    view! {
        <Show when=move || dragging.get()>
            <div class="drop-zone" aria-hidden="true">
                <p>{move || t_string!(i18n, files.drop_here, title = title.get())}</p>
            </div>
        </Show>
    }
}

/// The files picked for the next message, under the message box.
#[component]
pub fn UploadTray() -> impl IntoView {
    let i18n = use_i18n();
    let files = FilesCtx::get();
    let items = move || files.uploads.with(|u| u.items.clone());
    view! {
        <Show when=move || files.uploads.with(|u| !u.items.is_empty()) || files.full.get()>
            <ul class="uploads" aria-label=move || t_string!(i18n, files.picked)>
                <For each=items key=|u| (u.key, state_tag(&u.state)) let:u>
                    {
                        let key = u.key;
                        let name = u.name.clone();
                        let size = size_label(u.size);
                        let (status, failed) = match &u.state {
                            UploadState::Uploading => (None, false),
                            UploadState::Done(_) => (None, false),
                            UploadState::Failed(p) => (Some(p.clone()), true),
                        };
                        let uploading = u.state == UploadState::Uploading;
                        let label_name = name.clone();
                        let remove_label = move || {
                            if uploading {
                                t_string!(i18n, files.cancel, name = label_name.clone())
                            } else {
                                t_string!(i18n, files.remove, name = label_name.clone())
                            }
                        };
                        view! {
                            <li class="upload" class:failed=failed class:done=!uploading && !failed>
                                <span class="upload-name">{name.clone()}</span>
                                <span class="upload-size muted">{size}</span>
                                {uploading
                                    .then(|| {
                                        view! {
                                            <progress
                                                max="1"
                                                value=move || files.uploads.with(|u| u.fraction(key))
                                                aria-label=move || {
                                                    t_string!(i18n, files.uploading, name = name.clone())
                                                }
                                            ></progress>
                                        }
                                    })}
                                {status
                                    .map(|p| {
                                        let retry = p.retryable();
                                        view! {
                                            <span class="error upload-problem" role="alert">
                                                {move || problem_text(i18n.get_locale(), &p)}
                                            </span>
                                            {retry
                                                .then(|| {
                                                    view! {
                                                        <button
                                                            type="button"
                                                            class="link"
                                                            on:click=move |_| {
                                                                #[cfg(feature = "hydrate")]
                                                                io::retry(files, key);
                                                            }
                                                        >
                                                            {t!(i18n, files.retry)}
                                                        </button>
                                                    }
                                                })}
                                        }
                                    })}
                                <button
                                    type="button"
                                    class="ghost upload-remove"
                                    aria-label=remove_label
                                    on:click=move |_| {
                                        #[cfg(feature = "hydrate")]
                                        io::cancel(files, key);
                                        #[cfg(not(feature = "hydrate"))]
                                        files.uploads.update(|u| u.remove(key));
                                    }
                                >
                                    "×"
                                </button>
                            </li>
                        }
                    }
                </For>
                <Show when=move || files.full.get()>
                    <li class="error upload-problem" role="alert">
                        {t!(i18n, files.too_many, n = MAX_ATTACHMENTS)}
                    </li>
                </Show>
            </ul>
        </Show>
    }
}

/// Which of its states an upload is in (a change of state draws its line again).
fn state_tag(state: &UploadState) -> u8 {
    match state {
        UploadState::Uploading => 0,
        UploadState::Done(_) => 1,
        UploadState::Failed(_) => 2,
    }
}

/// A message's files: images as thumbnails (their box reserved before they load), which
/// open in the viewer; other files as cards that download them.
#[component]
pub fn MessageFiles(files: Vec<Attachment>) -> impl IntoView {
    let i18n = use_i18n();
    let viewer = FilesCtx::get().viewer;
    files
        .into_iter()
        .map(|a| {
            if let (true, Some(w), Some(h)) = (a.is_image(), a.width, a.height) {
                let (w, h) = fit(w, h, IMAGE_BOX.0, IMAGE_BOX.1);
                let name = a.name.clone();
                let thumb = a.thumbnail_url();
                view! {
                    <button
                        type="button"
                        class="msg-image"
                        aria-label=move || t_string!(i18n, files.open_image, name = name.clone())
                        on:click=move |_| viewer.set(Some(a.clone()))
                    >
                        <img src=thumb width=w height=h alt="" loading="lazy" decoding="async" />
                    </button>
                }
                .into_any()
            } else {
                let size = size_label(a.size);
                view! {
                    <a class="file-card" href=a.url() download=a.name.clone()>
                        <span class="file-icon" aria-hidden="true">
                            {file_badge(&a)}
                        </span>
                        <span class="file-name">{a.name.clone()}</span>
                        <span class="file-size muted">{size}</span>
                    </a>
                }
                .into_any()
            }
        })
        .collect_view()
}

/// A short word for a file's kind (its extension), shown on its card.
fn file_badge(a: &Attachment) -> String {
    a.name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.len() <= 4)
        .map_or_else(|| "FILE".to_owned(), str::to_uppercase)
}

/// The image a thumbnail opened, whole, over the page: Esc, the backdrop and Close shut
/// it, and the focus goes back to the thumbnail.
#[component]
pub fn ImageViewer() -> impl IntoView {
    let i18n = use_i18n();
    let viewer = FilesCtx::get().viewer;
    let close_button = NodeRef::<html::Button>::new();
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        // What had the focus when it opened (the thumbnail), before Close takes it.
        let opener = StoredValue::new_local(None::<leptos::web_sys::HtmlElement>);
        Effect::new(move |was_open: Option<bool>| {
            let open = viewer.with(Option::is_some);
            if open && was_open != Some(true) {
                opener.set_value(
                    document()
                        .active_element()
                        .and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok()),
                );
            }
            if open {
                // Runs again once the button is drawn.
                if let Some(b) = close_button.get() {
                    let _ = b.focus();
                }
            } else if was_open == Some(true) {
                if let Some(o) = opener.get_value() {
                    let _ = o.focus();
                }
            }
            open
        });
        let keys = window_event_listener(ev::keydown, move |ev: ev::KeyboardEvent| {
            if ev.key() == "Escape" && viewer.with_untracked(Option::is_some) {
                ev.prevent_default();
                viewer.set(None);
            }
        });
        on_cleanup(move || keys.remove());
    }
    move || {
        viewer.get().map(|a| {
            let name = a.name.clone();
            let (label, heading, save_as) = (name.clone(), name.clone(), name.clone());
            view! {
                <div class="backdrop viewer" on:click=move |_| viewer.set(None)>
                    <div
                        class="viewer-panel"
                        role="dialog"
                        aria-modal="true"
                        aria-label=label
                        on:click=|ev: ev::MouseEvent| ev.stop_propagation()
                    >
                        <header class="dialog-header">
                            <h2>{heading}</h2>
                            <a class="button-link" href=a.url() download=save_as>
                                {t!(i18n, files.download)}
                            </a>
                            <button
                                type="button"
                                class="ghost"
                                node_ref=close_button
                                on:click=move |_| viewer.set(None)
                            >
                                {t!(i18n, dialog.close)}
                            </button>
                        </header>
                        <img
                            src=a.url()
                            alt=name
                            width=a.width.unwrap_or(1)
                            height=a.height.unwrap_or(1)
                        />
                    </div>
                </div>
            }
        })
    }
}

/// The uploads themselves (browser only).
#[cfg(feature = "hydrate")]
mod io {
    use leptos::prelude::*;
    use leptos::wasm_bindgen::{closure::Closure, JsCast};
    use leptos::web_sys::{self, File, FileList, XmlHttpRequest};
    use std::{cell::RefCell, collections::HashMap};

    use super::FilesCtx;
    use crate::chat::uploads::UploadProblem;
    use crate::protocol::{Attachment, ConversationId, FILES_PATH};

    /// A picked file and its request while in flight.
    type Picked = (File, Option<XmlHttpRequest>);

    thread_local! {
        /// Each picked file, by conversation and key: for cancel and retry.
        static REQUESTS: RefCell<HashMap<(String, u64), Picked>> = RefCell::new(HashMap::new());
    }

    pub fn pick(files: FilesCtx, list: FileList) {
        for i in 0..list.length() {
            let Some(file) = list.get(i) else { continue };
            let name = file.name();
            let Some(key) = files
                .uploads
                .try_update(|u| u.add(&name, file.size() as u64))
                .flatten()
            else {
                files.full.set(true);
                return;
            };
            start(files, key, file);
        }
    }

    fn start(files: FilesCtx, key: u64, file: File) {
        let conversation = files.conversation.get_value();
        let entry = (conversation.0.clone(), key);
        let Ok(xhr) = XmlHttpRequest::new() else {
            files
                .uploads
                .update(|u| u.failed(key, UploadProblem::Network));
            return;
        };
        let url = format!(
            "{FILES_PATH}?conversation_id={}&name={}",
            String::from(js_sys_encode(&conversation.0)),
            String::from(js_sys_encode(&file.name()))
        );
        if xhr.open("POST", &url).is_err() {
            files
                .uploads
                .update(|u| u.failed(key, UploadProblem::Network));
            return;
        }
        let uploads = files.uploads;
        if let Ok(upload) = xhr.upload() {
            let progress = Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(
                move |ev: web_sys::ProgressEvent| {
                    uploads.try_update(|u| u.progress(key, ev.loaded() as u64));
                },
            );
            upload.set_onprogress(Some(progress.into_js_value().unchecked_ref()));
        }
        let done = {
            let xhr = xhr.clone();
            let entry = entry.clone();
            Closure::<dyn FnMut()>::new(move || {
                let status = xhr.status().unwrap_or(0);
                let text = xhr.response_text().ok().flatten().unwrap_or_default();
                if status == 201 {
                    match serde_json::from_str::<Attachment>(&text) {
                        Ok(a) => {
                            uploads.try_update(|u| u.done(key, a));
                        }
                        Err(_) => {
                            uploads.try_update(|u| u.failed(key, UploadProblem::Network));
                        }
                    }
                } else {
                    let code = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
                    let problem = UploadProblem::from_answer(status, code.as_deref());
                    uploads.try_update(|u| u.failed(key, problem));
                }
                REQUESTS.with(|r| {
                    if let Some(slot) = r.borrow_mut().get_mut(&entry) {
                        slot.1 = None;
                    }
                });
            })
        };
        xhr.set_onload(Some(done.into_js_value().unchecked_ref()));
        let failed = Closure::<dyn FnMut()>::new(move || {
            uploads.try_update(|u| u.failed(key, UploadProblem::Network));
        });
        xhr.set_onerror(Some(failed.into_js_value().unchecked_ref()));
        if xhr.send_with_opt_blob(Some(&file)).is_err() {
            files
                .uploads
                .update(|u| u.failed(key, UploadProblem::Network));
        }
        REQUESTS.with(|r| r.borrow_mut().insert(entry, (file, Some(xhr))));
    }

    fn js_sys_encode(s: &str) -> web_sys::js_sys::JsString {
        web_sys::js_sys::encode_uri_component(s)
    }

    /// Starts a failed upload again.
    pub fn retry(files: FilesCtx, key: u64) {
        let entry = (files.conversation.get_value().0, key);
        let Some(file) = REQUESTS.with(|r| r.borrow().get(&entry).map(|(f, _)| f.clone())) else {
            return;
        };
        files.uploads.update(|u| u.retry(key));
        start(files, key, file);
    }

    /// Stops an upload (or takes a finished or failed one off the message).
    pub fn cancel(files: FilesCtx, key: u64) {
        let entry = (files.conversation.get_value().0, key);
        if let Some((_, Some(xhr))) = REQUESTS.with(|r| r.borrow_mut().remove(&entry)) {
            let _ = xhr.abort();
        }
        files.uploads.update(|u| u.remove(key));
        files.full.set(false);
    }

    /// Stops every upload of a conversation that is closed.
    pub fn cancel_all(conversation: &ConversationId) {
        let gone: Vec<XmlHttpRequest> = REQUESTS.with(|r| {
            let mut r = r.borrow_mut();
            let keys: Vec<_> = r
                .keys()
                .filter(|(c, _)| *c == conversation.0)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| r.remove(&k).and_then(|(_, x)| x))
                .collect()
        });
        for xhr in gone {
            let _ = xhr.abort();
        }
    }

    /// Forgets the files of a message that was sent.
    pub fn forget_all(conversation: &ConversationId) {
        REQUESTS.with(|r| r.borrow_mut().retain(|(c, _), _| *c != conversation.0));
    }
}
