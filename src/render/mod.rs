//! stub: replaced by the render branch
use crate::event::ObjectCreated;
pub struct TemplateSources<'a> { pub subject: Option<&'a str>, pub text: Option<&'a str>, pub html: Option<&'a str> }
pub struct Templates;
#[derive(Debug)]
pub struct TemplateError { pub message: String }
impl std::fmt::Display for TemplateError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.message) } }
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct RenderError;
pub struct Context<'a> { pub event: &'a ObjectCreated, pub rule: &'a str, pub time_zone: &'a jiff::tz::TimeZone }
pub struct Rendered { pub subject: String, pub text: String, pub html: Option<String> }
impl Templates {
    pub fn compile(_s: TemplateSources<'_>) -> Result<Templates, Vec<TemplateError>> { Ok(Templates) }
    pub fn render(&self, _c: &Context<'_>) -> Result<Rendered, RenderError> { Err(RenderError) }
}
