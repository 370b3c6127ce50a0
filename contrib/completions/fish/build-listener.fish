complete -c build-listener -l config -d 'Configuration file' -r -F
complete -c build-listener -s h -l help -d 'Print help'
complete -c build-listener -s V -l version -d 'Print version'
