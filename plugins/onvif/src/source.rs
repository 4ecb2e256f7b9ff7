//! `onvif://` as a source: ask the device for the profile's stream URI, then
//! hand that URL back to the host (`SourceEvents::redirect`), which opens it
//! with the plugin of its scheme (rtsp, or http for `&snapshot`). The ONVIF
//! plugin never touches the media.

use std::sync::Mutex;

use camrouter_plugin_api::sdk::{Source, SourceEvents};
use tokio::sync::oneshot;

use crate::address::OnvifUrl;
use crate::client::Device;

pub struct Resolving(Mutex<Option<oneshot::Sender<()>>>);

impl Source for Resolving {
    fn stop(&self) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    }
}

pub fn open(
    url: &str,
    events: SourceEvents,
    runtime: &tokio::runtime::Handle,
) -> Result<Resolving, String> {
    let url = OnvifUrl::parse(url)?;
    let (tx, rx) = oneshot::channel::<()>();
    runtime.spawn(async move {
        let device = Device::new(url);
        tokio::select! {
            _ = rx => {}
            r = device.source_url() => match r {
                Ok(u) => {
                    tracing::debug!(url = %camrouter_plugin_api::secret::mask(&u), "onvif: resolved");
                    events.redirect(u);
                }
                Err(e) => events.closed(&e),
            },
        }
    });
    Ok(Resolving(Mutex::new(Some(tx))))
}
