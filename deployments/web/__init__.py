"""The voice page (HTML, CSS and JavaScript, no build step), served by the Ingress at `/` and `/web/`."""
