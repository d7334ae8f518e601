#pragma once
// JSON from files: nlohmann keeps the last of duplicate keys silently, so a config.json with
// two "dim" entries would load the one a reader did not look at. Parsed here in two linear
// passes: a SAX pass that refuses a duplicate key at any depth (naming its path) and nesting
// beyond max_depth, then the DOM parse. (nlohmann's callback parser is no alternative: it
// rescans the parent object at every object end, quadratic in the number of entries.)
#include <nlohmann/json.hpp>
#include <string>

namespace wavllm {

// An Error "label: ..." for invalid JSON, a duplicate key or too deep nesting.
nlohmann::json parse_json_strict(const std::string& text, const std::string& label, int max_depth = 32);

}  // namespace wavllm
