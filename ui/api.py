"""The app's API endpoints, which are also its MCP tools: every `api_name` is defined here and nowhere else."""

SEARCH = "search"
SEARCH_JSON = "search_json"
SIMILAR_TO = "similar_to"
EXPLAIN = "explain"
COMPARE = "compare"  # the default encoders (the three of the first Compare): its parameters as they always were
COMPARE_ENCODERS = "compare_encoders"  # the encoders the caller chooses
MY_GALLERY = "my_gallery"
SEARCH_MINE = "search_mine"
STUDY = "study"
GALLERY_MAP = "gallery_map"
DESCRIBE_SELECTION = "describe_selection"

# over the landmark gallery
LANDMARK_GALLERY = (SEARCH, SEARCH_JSON, SIMILAR_TO, EXPLAIN, COMPARE, COMPARE_ENCODERS, STUDY, GALLERY_MAP,
                    DESCRIBE_SELECTION)
YOUR_PHOTOS = (MY_GALLERY, SEARCH_MINE)  # over the caller's own private gallery

UI_ONLY = {"api_visibility": "private"}  # keyword arguments of an event that is the UI's alone (not in API or MCP)
