//! A real headless Chromium, driven over WebDriver by Debian's `chromium-driver`
//! (`chromedriver`) on a free loopback port.
//!
//! `just test-servers` installs Debian's `chromium` and `chromium-driver`. Each [`Chromium`]
//! runs its own `chromedriver` (killed when it drops), which starts a browser per WebDriver
//! session; [`Chromium::capabilities`] are the options every session needs here (headless, no
//! sandbox as root, a fixed window, its own profile).

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::{self, Process};

/// How to get Chromium, for skip messages.
pub const INSTALL_HINT: &str =
    "install it with `apt-get install chromium chromium-driver`, or run `just test-servers`";

/// A running `chromedriver`.
pub struct Chromium {
    process: Process,
    port: u16,
    browser: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Chromium {
    /// Starts `chromedriver` on a free loopback port and waits until it listens.
    ///
    /// When `chromedriver` or `chromium` cannot be found, calls [`e2e::skip`] for `test` and
    /// returns `None` (which fails instead under `GRACE_E2E=required`).
    pub fn start(test: &str) -> Option<Chromium> {
        let (Some(driver), Some(browser)) = (
            e2e::find_binary("chromedriver", &["/usr/bin", "/usr/lib/chromium"]),
            e2e::find_binary("chromium", &["/usr/bin"]),
        ) else {
            e2e::skip(
                test,
                "Chromium and its WebDriver (chromium, chromedriver)",
                INSTALL_HINT,
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("grace-chromium-")
            .tempdir()
            .unwrap_or_else(|e| panic!("no temporary directory for chromedriver: {e}"));
        let port = e2e::free_port();
        let mut command = Command::new(driver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg("--log-level=WARNING");
        let mut process = Process::spawn(
            "chromedriver",
            command,
            &dir.path().join("chromedriver.log"),
        );
        process.wait_for_port(port, Duration::from_secs(30));
        Some(Chromium {
            process,
            port,
            browser,
            _dir: dir,
        })
    }

    /// The WebDriver URL, `http://127.0.0.1:<port>`.
    pub fn webdriver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The capabilities of a headless session; `javascript: false` turns scripts off, as a
    /// reader without JavaScript has them; `dark` makes pages see `prefers-color-scheme: dark`.
    pub fn capabilities(&self, javascript: bool, dark: bool) -> serde_json::Map<String, Value> {
        let mut prefs = json!({});
        if !javascript {
            prefs = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ];
        if dark {
            args.push("--force-dark-mode");
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.browser,
                "args": args,
                "prefs": prefs,
            }
        });
        match caps {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        }
    }

    /// What `chromedriver` logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}
