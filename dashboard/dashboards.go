package dashboard

// dashboardsPageRoutes answers deep links to the saved insights and
// dashboards pages (/dashboards, /dashboards/<id>) with the app's page,
// as uiRoutes does for the other sections; their data comes from the
// documents API (docs.go).
func (h *Handler) dashboardsPageRoutes() {
	h.mux.HandleFunc("GET /dashboards", h.serveIndex)
	h.mux.HandleFunc("GET /dashboards/", h.serveIndex)
}
