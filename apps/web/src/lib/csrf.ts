// The CSRF token the browser must echo on writes: readable from the
// virga_csrf cookie (the session cookie itself is HttpOnly).
export function csrfToken(): string {
  if (typeof document === "undefined") return "";
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "virga_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}
