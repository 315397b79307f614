// Tell the server the viewer's time zone, so that times render in it (see app/presenting.py).
(function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone) {
    document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
  }
})();
