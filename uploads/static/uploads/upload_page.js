/* The admin's "Upload videos" page: one tus-js-client upload per file, then the video's
 * processing status from the JSON APIs. Configuration comes from the #upload-config JSON. */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("upload-config").textContent);
  var input = document.getElementById("upload-input");
  var drop = document.getElementById("upload-drop");
  var table = document.getElementById("upload-table");
  var list = document.getElementById("upload-list");
  var startAll = document.getElementById("upload-start-all");
  var previousBox = document.getElementById("upload-previous");
  var previousList = document.getElementById("upload-previous-list");
  var announcer = document.getElementById("upload-announcer");
  var urlStorage = window.tus.defaultOptions.urlStorage;
  var rows = [];
  var POLL_MS = 1500;
  var SPEED_WINDOW_MS = 5000;
  // Upload states in which the bytes are not all on the server yet (tus upload states on the server).
  var OPEN_UPLOAD_STATES = ["created", "uploading"];
  // Video states that are not final: the page follows them until ready or failed.
  var OPEN_VIDEO_STATES = ["uploaded", "queued", "processing", "blocked"];

  function withId(template, id) { return template.replace(config.placeholder, id); }

  function idOf(url) { return url.replace(/\/+$/, "").split("/").pop(); }

  function formatBytes(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
  }

  function formatSeconds(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
  }

  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  /* The server's rules (uploads.services.admission: upload_format_check / upload_length_check), checked before sending. */
  function refusal(file) {
    var allowed = config.allowedFormats.join(", ");
    var ext = extensionOf(file.name);
    if (!ext) { return "file name " + file.name + " has no extension; upload a video file (" + allowed + ")"; }
    if (config.allowedFormats.indexOf(ext) === -1) { return "'." + ext + "' files are not accepted; upload one of: " + allowed; }
    if (file.type && file.type.indexOf("video/") !== 0 && file.type !== "application/octet-stream") {
      return "file type " + file.type + " is not a video; upload one of: " + allowed;
    }
    if (file.size > config.maxBytes) {
      return "file is " + formatBytes(file.size) + ", over the " + config.maxSizeMb + " MB limit";
    }
    if (file.size === 0) { return "file is empty"; }
    return null;
  }

  /* The message the server gave (JSON {"detail"}), else what tus-js-client knows. */
  function serverMessage(error) {
    var response = error && error.originalResponse;
    if (response) {
      var body = response.getBody();
      try {
        var detail = JSON.parse(body).detail;
        if (detail) { return detail; }
      } catch (ignored) { /* not JSON: fall through to the status */ }
      return "the server answered " + response.getStatus() + (body ? ": " + body.slice(0, 200) : "");
    }
    return error && error.message ? error.message : String(error);
  }

  /* JSON from the APIs with the admin session (and its CSRF token for writes). */
  function api(url, method, body) {
    var options = { method: method || "GET", credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method && method !== "GET") {
      options.headers["X-CSRFToken"] = config.csrfToken;
      if (body !== undefined) {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body);
      }
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.detail || "status " + response.status + " from " + url);
        }
        return data;
      });
    });
  }

  function announce(text) {
    announcer.textContent = text;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function button(label, className, handler) {
    var node = element("button", "button " + (className || ""), label);
    node.type = "button";
    node.addEventListener("click", handler);
    return node;
  }

  /* One upload: a file picked on this page, or (``source.restored``) an upload or video
   * still processing when the page was loaded, rebuilt from the APIs. */
  function Row(source) {
    this.file = source.file || null;
    this.name = source.file ? source.file.name : source.name;
    this.size = source.file ? source.file.size : source.size;
    this.upload = null;
    this.state = "pending";
    this.samples = [];
    this.build(source.title || this.name);
  }

  Row.prototype.build = function (title) {
    var tr = element("tr", "upload-row");
    var fileCell = element("td", "upload-file");
    var name = element("div", "upload-name", this.name);
    name.title = this.name;
    fileCell.appendChild(name);
    fileCell.appendChild(element("div", "upload-size", this.size ? formatBytes(this.size) : ""));
    this.titleInput = element("input", "vTextField upload-title");
    this.titleInput.type = "text";
    this.titleInput.maxLength = 255;
    this.titleInput.value = title;
    this.titleInput.setAttribute("aria-label", "Title of " + this.name);
    this.titleInput.addEventListener("input", function () { this.titleEdited = true; }.bind(this));
    this.titleInput.addEventListener("change", this.titleChanged.bind(this));
    var titleCell = element("td");
    titleCell.appendChild(this.titleInput);
    var progressCell = element("td", "upload-progress-cell");
    this.bar = element("progress", "upload-bar");
    this.bar.max = 100;
    this.bar.value = 0;
    this.bar.setAttribute("aria-label", "Upload of " + this.name);
    this.percent = element("span", "upload-percent", "0%");
    this.percent.setAttribute("aria-hidden", "true");
    this.rate = element("div", "upload-rate");
    progressCell.appendChild(this.bar);
    progressCell.appendChild(this.percent);
    progressCell.appendChild(this.rate);
    this.statusCell = element("td", "upload-status");
    this.message = element("span", "upload-message", "Ready to upload");
    this.statusCell.appendChild(this.message);
    this.controls = element("td", "upload-controls");
    this.startButton = button("Upload", "default", this.start.bind(this));
    this.pauseButton = button("Pause", "", this.togglePause.bind(this));
    this.retryButton = button("Retry", "default upload-retry", this.retry.bind(this));
    this.cancelButton = button("Remove", "upload-remove", this.cancel.bind(this));
    [this.startButton, this.pauseButton, this.retryButton, this.cancelButton].forEach(function (node) {
      this.controls.appendChild(node);
    }, this);
    [fileCell, titleCell, progressCell, this.statusCell, this.controls].forEach(function (cell) { tr.appendChild(cell); });
    this.tr = tr;
    this.setState("pending", "Ready to upload");
    var problem = this.file ? refusal(this.file) : null;
    if (problem) { this.refuse(problem); }
  };

  /* Which buttons a row in ``state`` offers. */
  var CONTROLS = {
    pending: ["start", "cancel"],
    refused: ["cancel"],
    uploading: ["pause", "cancel"],
    offline: ["pause", "cancel"],
    paused: ["pause", "cancel"],
    error: ["retry", "cancel"],
    cancelling: [],
    following: [],
    done: [],
    failed: ["retry", "cancel"]
  };

  Row.prototype.setState = function (state, text, phase) {
    var changed = this.state !== state || this.phase !== (phase || state);
    this.state = state;
    this.phase = phase || state;
    this.tr.dataset.state = state;
    this.message.textContent = text;
    this.message.className = "upload-message upload-message-" + state;
    var shown = CONTROLS[state] || [];
    this.startButton.hidden = shown.indexOf("start") === -1;
    this.pauseButton.hidden = shown.indexOf("pause") === -1;
    this.pauseButton.textContent = state === "paused" ? "Resume" : "Pause";
    this.retryButton.hidden = shown.indexOf("retry") === -1 || (state === "failed" && !this.retryable);
    this.cancelButton.hidden = shown.indexOf("cancel") === -1;
    this.cancelButton.textContent = ["uploading", "offline", "paused", "error"].indexOf(state) !== -1 ? "Cancel" : "Remove";
    if (changed) { announce(this.name + ": " + text); }
    refreshToolbar();
  };

  Row.prototype.clearRate = function () {
    this.rate.textContent = "";
    this.samples = [];
  };

  Row.prototype.refuse = function (text) {
    this.setState("refused", "Refused: " + text);
    this.titleInput.disabled = true;
  };

  Row.prototype.start = function () {
    if (this.state !== "pending" || !this.file) { return; }
    var row = this;
    this.sentTitle = this.titleInput.value.trim() || this.file.name;
    this.setState("uploading", "Starting…");
    this.upload = new window.tus.Upload(this.file, {
      endpoint: config.endpoint,
      chunkSize: config.chunkSize,
      retryDelays: config.retryDelays,
      headers: { "X-CSRFToken": config.csrfToken },
      metadata: {
        filename: this.file.name,
        filetype: this.file.type || "application/octet-stream",
        title: this.sentTitle
      },
      // The same file picked again by the same user resumes its stored upload.
      fingerprint: function (file) {
        return Promise.resolve(["unpuzzle", config.userId, file.name, file.type, file.size, file.lastModified, config.endpoint].join("-"));
      },
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) { row.progress(sent, total); },
      onSuccess: function () { row.uploaded(); },
      onError: function (error) { row.failed(error); },
      onShouldRetry: function (error) {
        var status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        // Offline: wait for the "online" event instead of spending the retries.
        if (!navigator.onLine) { return false; }
        return status === 0 || status >= 500 || status === 409 || status === 423;
      }
    });
    this.upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        row.upload.resumeFromPreviousUpload(previous[0]);
        row.setState("uploading", "Resuming an earlier upload of this file…", "resuming");
        row.resumed = true;
      }
      row.upload.start();
    });
  };

  Row.prototype.progress = function (sent, total) {
    var now = Date.now();
    var pct = total ? Math.floor((sent / total) * 100) : 0;
    this.bar.value = pct;
    this.percent.textContent = pct + "%";
    if (!navigator.onLine) {
      // No speed or time left while offline: the last figures would be a guess.
      this.clearRate();
      return;
    }
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) { this.samples.shift(); }
    var first = this.samples[0];
    var elapsed = (now - first[0]) / 1000;
    if (elapsed > 0.2 && sent > first[1]) {
      var speed = (sent - first[1]) / elapsed;
      this.rate.textContent = formatBytes(speed) + "/s, " + formatSeconds((total - sent) / speed) + " left";
    }
    if (this.state === "uploading" || this.state === "offline") {
      this.setState("uploading", "Uploading " + formatBytes(sent) + " of " + formatBytes(total) + (this.resumed ? " (resumed)" : ""));
    }
  };

  Row.prototype.togglePause = function () {
    var row = this;
    if (this.state === "uploading" || this.state === "offline") {
      this.upload.abort().then(function () {
        row.clearRate();
        row.setState("paused", "Paused");
      });
    } else if (this.state === "paused") {
      this.setState("uploading", "Resuming…");
      this.upload.start();
    }
  };

  /* Retry what can help: resume a stopped transfer, send the file again, or transcode the video again. */
  Row.prototype.retry = function () {
    var row = this;
    if (this.state === "error") {
      this.setState("uploading", "Resuming…");
      this.upload.start();
    } else if (this.state === "failed" && this.videoId) {
      delete this.tr.dataset.final;
      this.setState("following", "Asking for another try…", "retrying");
      api(withId(config.retranscodeUrl, this.videoId), "POST").then(function () {
        row.poll();
      }, function (error) {
        row.finish("failed", "Retry refused: " + error.message, false);
      });
    } else if (this.state === "failed" && this.file) {
      delete this.tr.dataset.final;
      this.upload = null;
      this.uploadId = null;
      this.resumed = false;
      this.bar.value = 0;
      this.percent.textContent = "0%";
      this.setState("pending", "Ready to upload");
      this.start();
    }
  };

  /* Forget this upload's resume entry in the browser (tus-js-client's URL storage). */
  Row.prototype.forgetResume = function () {
    var key = this.upload && this.upload._urlStorageKey;
    if (key) { urlStorage.removeUpload(key); }
    if (this.upload && this.upload.url) { previousItemRemove(this.upload.url); }
  };

  Row.prototype.remove = function () {
    this.forgetResume();
    this.tr.remove();
    rows.splice(rows.indexOf(this), 1);
    announce(this.name + ": removed");
    refreshToolbar();
  };

  Row.prototype.cancel = function () {
    var row = this;
    if (this.upload && ["uploading", "paused", "offline", "error"].indexOf(this.state) !== -1) {
      this.setState("cancelling", "Cancelling…");
      // abort(true) stops the transfer and terminates the upload on the server (DELETE).
      this.upload.abort(true).then(function () { row.remove(); }, function (error) {
        row.setState("error", "Could not cancel: " + serverMessage(error));
      });
    } else if (["pending", "refused", "failed"].indexOf(this.state) !== -1) {
      this.remove();
    }
  };

  Row.prototype.failed = function (error) {
    if (!navigator.onLine) {
      this.clearRate();
      this.setState("offline", "Offline: the upload continues when the connection returns");
      return;
    }
    var status = error.originalResponse ? error.originalResponse.getStatus() : 0;
    if (status >= 400 && status < 500 && !this.upload.url) {
      this.refuse(serverMessage(error));
      return;
    }
    this.clearRate();
    this.setState("error", "Upload stopped: " + serverMessage(error));
  };

  Row.prototype.uploaded = function () {
    this.bar.value = 100;
    this.percent.textContent = "100%";
    this.clearRate();
    previousItemRemove(this.upload.url);
    this.follow({ uploadId: idOf(this.upload.url) });
  };

  /* Follow the upload (``uploadId``) or its video (``videoId``) until it is ready or failed. */
  Row.prototype.follow = function (target) {
    this.uploadId = target.uploadId || null;
    this.videoId = target.videoId || null;
    this.bar.value = 100;
    this.percent.textContent = "100%";
    this.bar.setAttribute("aria-label", "Upload of " + this.name + " (done)");
    this.setState("following", this.videoId ? "Checking the video…" : "Uploaded; checking the file…", "checking");
    this.poll();
  };

  Row.prototype.poll = function () {
    var row = this;
    var target = this.videoId ? withId(config.videoApiUrl, this.videoId) : withId(config.uploadUrl, this.uploadId);
    api(target)
      .then(function (data) {
        if (!row.tr.isConnected) { return; }
        if (row.videoId) { row.showVideo(data); } else { row.showUpload(data); }
      })
      .catch(function (error) {
        row.setState("following", "Waiting for the server (" + error.message + ")", "waiting");
        row.schedulePoll();
      });
  };

  Row.prototype.schedulePoll = function () {
    window.setTimeout(this.poll.bind(this), POLL_MS);
  };

  Row.prototype.showUpload = function (data) {
    if (data.status === "failed") {
      this.finish("failed", "Failed: " + (data.error || "the file was refused"), data.retryable && !!this.file);
    } else if (data.video_id) {
      this.videoId = data.video_id;
      this.setState("following", "Queued", "queued");
      this.poll();
    } else {
      this.setState("following", data.error ? "Checking the file (" + data.error + ")" : "Checking the file…", "checking");
      this.schedulePoll();
    }
  };

  Row.prototype.showVideo = function (video) {
    this.tr.dataset.videoId = video.id;
    this.tr.dataset.videoStatus = video.status;
    if (!this.titleEdited) {
      // Not edited here: show the video's own title (a row rebuilt after a reload starts with the file name).
      this.titleInput.value = video.title;
      this.sentTitle = video.title;
    }
    this.saveTitle();
    if (video.status === "ready") {
      this.finish("ready", video.duplicate_of
        ? "Ready (same file as \u201c" + video.duplicate_of_title + "\u201d: no new processing) \u00b7 "
        : "Ready: ");
      this.tr.dataset.duplicateOf = video.duplicate_of || "";
      var watch = element("a", "upload-watch", "watch");
      watch.href = withId(config.playerUrl, video.id);
      var edit = element("a", "upload-edit", "edit");
      edit.href = withId(config.changeUrl, video.id);
      this.message.appendChild(watch);
      this.message.appendChild(document.createTextNode(" · "));
      this.message.appendChild(edit);
      return;
    }
    if (video.status === "failed") {
      this.finish("failed", "Failed: " + (video.status_reason || "processing failed"), video.retryable);
      return;
    }
    var text = {
      uploaded: "Uploaded",
      queued: video.duplicate_of
        ? "Waiting for \u201c" + video.duplicate_of_title + "\u201d (same file) to finish processing"
        : "Queued for transcoding",
      processing: "Processing " + (video.progress || 0) + "%",
      blocked: "Blocked: " + (video.status_reason || "spending is stopped")
    }[video.status] || video.status;
    this.setState("following", text, video.status);
    this.schedulePoll();
  };

  Row.prototype.finish = function (state, text, retryable) {
    this.retryable = !!retryable;
    this.setState(state === "ready" ? "done" : "failed", text);
    this.tr.dataset.final = state;
  };

  /* A title edited after the upload started reaches the video once it exists. */
  Row.prototype.titleChanged = function () {
    if (this.state !== "pending") { this.saveTitle(); }
  };

  Row.prototype.saveTitle = function () {
    var row = this;
    var title = this.titleInput.value.trim();
    if (!this.titleEdited || !this.videoId || !title || title === this.sentTitle || this.savingTitle) { return; }
    this.savingTitle = true;
    api(withId(config.videoApiUrl, this.videoId), "PATCH", { title: title }).then(function (video) {
      row.sentTitle = video.title;
      row.savingTitle = false;
      announce(row.name + ": title saved");
      row.saveTitle();
    }, function (error) {
      row.savingTitle = false;
      announce(row.name + ": the title could not be saved (" + error.message + ")");
    });
  };

  function refreshToolbar() {
    table.hidden = rows.length === 0;
    startAll.disabled = !rows.some(function (row) { return row.state === "pending"; });
  }

  function addRow(source) {
    var row = new Row(source);
    rows.push(row);
    list.appendChild(row.tr);
    refreshToolbar();
    return row;
  }

  function addFiles(files) {
    Array.prototype.forEach.call(files, function (file) { addRow({ file: file }); });
  }

  function openPicker() { input.click(); }

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = "";
  });
  drop.addEventListener("click", openPicker);
  drop.addEventListener("keydown", function (event) {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openPicker();
    }
  });
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("upload-drop-over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("upload-drop-over"); });
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) { addFiles(event.dataTransfer.files); }
  });
  startAll.addEventListener("click", function () {
    rows.slice().forEach(function (row) { row.start(); });
    refreshToolbar();
  });
  window.addEventListener("offline", function () {
    rows.forEach(function (row) {
      row.clearRate();
      if (row.state === "uploading") {
        row.setState("offline", "Offline: the upload continues when the connection returns");
      }
    });
  });
  window.addEventListener("online", function () {
    rows.forEach(function (row) {
      if (row.state === "offline") {
        row.setState("uploading", "Back online: resuming…");
        row.upload.start();
      }
    });
  });
  window.addEventListener("beforeunload", function (event) {
    if (rows.some(function (row) { return row.state === "uploading"; })) { event.preventDefault(); }
  });

  function previousItemRemove(uploadUrl) {
    Array.prototype.slice.call(previousList.children).forEach(function (item) {
      if (item.dataset.uploadUrl === uploadUrl) { item.remove(); }
    });
    previousBox.hidden = previousList.children.length === 0;
  }

  /* Uploads this browser started and did not finish: picking the same file resumes them. */
  function listUnfinished() {
    return urlStorage.findAllUploads().then(function (uploads) {
      var mine = uploads.filter(function (upload) { return upload.urlStorageKey.indexOf("unpuzzle-" + config.userId + "-") !== -1; });
      mine.forEach(function (upload) {
        var item = element("li", "", (upload.metadata.filename || "file") + " (" + formatBytes(upload.size) + "), started " +
          new Date(upload.creationTime).toLocaleString() + ": add the same file to resume. ");
        item.dataset.uploadUrl = upload.uploadUrl || "";
        item.dataset.storageKey = upload.urlStorageKey;
        item.appendChild(button("Forget", "", function () {
          urlStorage.removeUpload(upload.urlStorageKey).then(function () {
            item.remove();
            previousBox.hidden = previousList.children.length === 0;
          });
        }));
        previousList.appendChild(item);
      });
      previousBox.hidden = previousList.children.length === 0;
    });
  }

  /* Forget the listed uploads the server already has whole (finished, failed, expired or cancelled). */
  function forgetFinished(sessions) {
    var states = {};
    sessions.forEach(function (session) { states[session.id] = session.status; });
    Array.prototype.slice.call(previousList.children).forEach(function (item) {
      var state = item.dataset.uploadUrl ? states[idOf(item.dataset.uploadUrl)] : undefined;
      if (state !== undefined && OPEN_UPLOAD_STATES.indexOf(state) === -1) {
        urlStorage.removeUpload(item.dataset.storageKey);
        item.remove();
      }
    });
    previousBox.hidden = previousList.children.length === 0;
  }

  /* After a reload: rows again for the user's uploads being checked and videos not ready yet. */
  function restore() {
    var listed = listUnfinished();
    var uploads = api(config.endpoint).then(function (page) { return page.results || []; }, function () { return []; });
    uploads.then(function (sessions) {
      listed.then(function () { forgetFinished(sessions); });
      sessions.forEach(function (session) {
        if (session.status === "complete") {
          addRow({ name: session.filename, size: session.length }).follow({ uploadId: session.id });
        }
      });
    });
    uploads.then(function () {
      OPEN_VIDEO_STATES.forEach(function (status) {
        api(config.videoListUrl + "?status=" + status).then(function (page) {
          (page.results || []).forEach(function (video) {
            if (video.owner !== config.username) { return; }
            var source = video.media || {};
            addRow({ name: source.original_filename || video.title, size: source.size, title: video.title })
              .follow({ videoId: video.id });
          });
        }, function () { /* the rows are a convenience: the video list shows them all */ });
      });
    });
  }

  refreshToolbar();
  restore();
})();
