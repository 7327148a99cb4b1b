// fhirledger portal: a progress bar for upload forms (form[data-upload]).
// Without this script the forms post as usual; with it, the file is sent by
// XMLHttpRequest so the person sees how far it is, a file over the limit is
// refused before anything is sent, and the page the server answers with
// (the dashboard, or a message) replaces this one.
(function () {
  'use strict';
  function human(bytes) {
    if (bytes < 1024) return bytes + ' bytes';
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
    return (bytes / (1024 * 1024)).toFixed(1) + ' MiB';
  }
  function enhance(form) {
    var file = form.querySelector('input[type=file]');
    var bar = form.querySelector('progress');
    var status = form.querySelector('.upload-status');
    var button = form.querySelector('button[type=submit]');
    form.addEventListener('submit', function (event) {
      var chosen = file && file.files && file.files[0];
      var max = Number(file && file.getAttribute('data-max-bytes'));
      if (chosen && max && chosen.size > max) {
        event.preventDefault();
        status.textContent = 'This file is ' + human(chosen.size) + ': files of at most ' + human(max) + ' can be uploaded.';
        return;
      }
      if (!window.XMLHttpRequest || !window.FormData) return;
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.upload.addEventListener('progress', function (e) {
        if (!e.lengthComputable) return;
        var percent = Math.round((e.loaded / e.total) * 100);
        bar.hidden = false;
        bar.value = percent;
        status.textContent = 'Uploading: ' + percent + ' %';
      });
      xhr.addEventListener('load', function () {
        if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL && xhr.responseURL !== form.action) {
          window.location.assign(xhr.responseURL);
        } else {
          document.open();
          document.write(xhr.responseText);
          document.close();
        }
      });
      xhr.addEventListener('error', function () {
        status.textContent = 'The upload failed: the connection was lost. Please try again.';
        button.disabled = false;
      });
      button.disabled = true;
      status.textContent = 'Uploading…';
      xhr.send(new FormData(form));
    });
  }
  document.addEventListener('DOMContentLoaded', function () {
    var forms = document.querySelectorAll('form[data-upload]');
    for (var i = 0; i < forms.length; i++) enhance(forms[i]);
  });
})();
